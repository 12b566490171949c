package watch

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// change is one host path a rule saw change.
type change struct {
	rule *Rule
	host string
	// removed: the path was deleted, not just renamed away (an editor's
	// temporary file is), so its absence is worth reporting.
	removed bool
}

// syncResult counts what one sync did.
type syncResult struct {
	files   int
	deleted int
}

func (s syncResult) String() string {
	out := fmt.Sprintf("synced %d %s", s.files, plural(s.files, "file"))
	if s.deleted > 0 {
		// The Engine API copies but cannot delete, and images may have no
		// shell to exec rm in.
		out += fmt.Sprintf(" (%d deleted %s left in the container: rebuild to drop %s)", s.deleted, plural(s.deleted, "file"), pronoun(s.deleted))
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// copyChanges copies the changed files (whole trees for a changed
// directory) into the container in one tar stream through the Docker API,
// extracted at / so that missing parent directories are created.
func copyChanges(ctx context.Context, api Docker, id string, changes []change) (syncResult, error) {
	var res syncResult
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, c := range changes {
		err := filepath.WalkDir(c.host, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					if p == c.host && c.removed {
						res.deleted++
					}
					return nil
				}
				return err
			}
			if !c.rule.Matches(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			dst := strings.TrimPrefix(c.rule.containerPath(p), "/")
			if dst == "" || seen[dst] {
				return nil
			}
			seen[dst] = true
			n, err := addToTar(tw, p, dst, d)
			res.files += n
			return err
		})
		if err != nil {
			return res, fmt.Errorf("read %s: %w", c.host, err)
		}
	}
	if err := tw.Close(); err != nil {
		return res, err
	}
	if res.files == 0 {
		return res, nil
	}
	if err := api.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return res, fmt.Errorf("copy into the container: %w", err)
	}
	return res, nil
}

// addToTar adds one entry and says whether it was a file (directories and
// links are carried but not counted).
func addToTar(tw *tar.Writer, p, name string, d fs.DirEntry) (int, error) {
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return 0, err
		}
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
		return 0, nil // sockets, pipes: nothing to copy
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return 0, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Root-owned, as files the image's COPY adds are.
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if !fi.Mode().IsRegular() {
		return 0, tw.WriteHeader(hdr)
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// The file may grow between stat and read: copy exactly the size the
	// header announced.
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return 0, fmt.Errorf("read %s: %w", p, err)
	}
	return 1, nil
}
