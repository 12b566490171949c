package release

import "fmt"

// RecordOverride appends an override to a saved release. The images stay as they
// are; the manifest only gains the record of who shipped them past the scan gate.
func (s Store) RecordOverride(id string, o Override) (*Release, error) {
	r, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	r.Overrides = append(r.Overrides, o)
	if err := s.replace(*r); err != nil {
		return nil, fmt.Errorf("record the override in release %s: %w", id, err)
	}
	return r, nil
}
