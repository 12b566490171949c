package release

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RecordOverride appends an override to a saved release. The images stay as they
// are; the manifest only gains the record of who shipped them past the scan gate.
func (s Store) RecordOverride(id string, o Override) (*Release, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	r.Overrides = append(r.Overrides, o)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := replaceFile(s.path(id), append(b, '\n')); err != nil {
		return nil, fmt.Errorf("record the override in release %s: %w", id, err)
	}
	return r, nil
}

// replaceFile writes b beside path under a fresh temporary name and renames it into
// place: a crash leaves the old file or the new one, never half of either.
func replaceFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
