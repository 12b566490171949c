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

func (s Store) path(id string) string { return filepath.Join(s.Dir, id+".json") }

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
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	f, err := os.OpenFile(s.path(r.ID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("save release %s: it exists, and releases are immutable: build again for a new release", r.ID)
	}
	if err != nil {
		return fmt.Errorf("save release: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		f.Close()
		os.Remove(s.path(r.ID))
		return fmt.Errorf("save release %s: %w", r.ID, err)
	}
	return f.Close()
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
	tmp := s.path(id) + ".tmp"
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("record digests: %w", err)
	}
	// Rename is atomic: a crash leaves the old manifest or the new one, never half.
	if err := os.Rename(tmp, s.path(id)); err != nil {
		return nil, fmt.Errorf("record digests: %w", err)
	}
	return r, nil
}

// Get reads one release.
func (s Store) Get(id string) (*Release, error) {
	r, err := Load(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (list them with vmctl releases)", ErrNotFound, id)
	}
	return r, err
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
		r, err := Load(filepath.Join(s.Dir, e.Name()))
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
