package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultDir is where releases are kept, beside the project.
const DefaultDir = ".vmctl/releases"

// Store keeps release manifests as one JSON file each. A release is
// immutable: Save refuses an ID that exists; Update may only add registry
// digests to images, never change what a release is.
type Store struct {
	Dir string
}

// path is the manifest file of id; it refuses an id that is not one, so no flag or tag
// can name a file outside the store.
func (s Store) path(id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, id+".json"), nil
}

// ErrNotFound is returned for a release that is not in the store.
var ErrNotFound = errors.New("no such release")

// Save writes a new release.
func (s Store) Save(r Release) error {
	if r.ID == "" {
		return errors.New("save release: it has no id")
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	path, err := s.path(r.ID)
	if err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	tmp, err := s.writeTemp(r)
	if err != nil {
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	defer os.Remove(tmp)
	// A hard link, unlike a rename, fails when the manifest exists: a release is written
	// once, whole, and never replaced.
	err = os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("save release %s: it exists, and releases are immutable: build again for a new release", r.ID)
	}
	if err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	return nil
}

// writeTemp writes r to a new file beside the manifests, to be linked or renamed into
// place, so a crash never leaves half a manifest under a release's name. Its name starts
// with a dot and does not end in .json, so List passes over any a crash leaves.
func (s Store) writeTemp(r Release) (string, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(s.Dir, "."+r.ID+".*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// RecordDigests adds registry digests to a saved release. An image's digest,
// once recorded, may not change: that would make it another release.
func (s Store) RecordDigests(id string, digests map[string]string) (*Release, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	for svc, d := range digests {
		img, ok := r.Images[svc]
		if !ok {
			return nil, fmt.Errorf("release %s has no image for %s", id, svc)
		}
		if img.Digest != "" && img.Digest != d {
			return nil, fmt.Errorf("release %s: %s is %s, not %s: releases are immutable", id, svc, img.Digest, d)
		}
		img.Digest = d
		r.Images[svc] = img
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.replace(*r); err != nil {
		return nil, fmt.Errorf("record digests of release %s: %w", id, err)
	}
	return r, nil
}

// replace rewrites a saved release's manifest through a temporary file and a rename,
// which is atomic: a crash leaves the old manifest or the new one, never half.
func (s Store) replace(r Release) error {
	path, err := s.path(r.ID)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(r)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Get reads one release.
func (s Store) Get(id string) (*Release, error) {
	path, err := s.path(id)
	if err != nil {
		return nil, err
	}
	r, err := s.load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (list them with vmctl releases)", ErrNotFound, id)
	}
	return r, err
}

// load reads a manifest in the store, whose file name must be its id: the name is how
// Get finds it, and the id is the tag a push gives its images.
func (s Store) load(path string) (*Release, error) {
	r, err := Load(path)
	if err != nil {
		return nil, err
	}
	if name := strings.TrimSuffix(filepath.Base(path), ".json"); r.ID != name {
		return nil, fmt.Errorf("read release %s: its id is %q, not %q as its file name says: fix the id or the name", path, r.ID, name)
	}
	return r, nil
}

// List returns every release, newest first.
func (s Store) List() ([]Release, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	var out []Release
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		r, err := s.load(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// Latest returns the newest release.
func (s Store) Latest() (*Release, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: none recorded yet: run vmctl build", ErrNotFound)
	}
	return &all[0], nil
}
