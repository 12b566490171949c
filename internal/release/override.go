package release

import (
	"fmt"
	"os"
)

// RecordOverride appends an override to a saved release. The images stay as they
// are; the manifest only gains the record of who shipped them past the scan gate.
func (s Store) RecordOverride(id string, o Override) (*Release, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	path, err := s.path(id)
	if err != nil {
		return nil, err
	}
	r.Overrides = append(r.Overrides, o)
	tmp, err := s.writeTemp(*r)
	if err != nil {
		return nil, fmt.Errorf("record the override in release %s: %w", id, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("record the override in release %s: %w", id, err)
	}
	return r, nil
}
