package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Observation is the health vmctl itself saw in one container, and when.
// Docker runs a health check only every interval (30 s by default), so right
// after `up` Docker still says "starting" of a service vmctl has seen healthy;
// ps shows whichever of the two is newer. A container label cannot carry it
// (labels are fixed at creation), so it lives in a small state file.
type Observation struct {
	Container string    `json:"container"` // short ID: a recreated container does not inherit it
	Health    string    `json:"health"`
	At        time.Time `json:"observed_at"`
}

// ObservationsPath is the project's state file under dir ($XDG_STATE_HOME or
// the user cache directory); empty, and nothing is kept, without a dir.
func ObservationsPath(dir, project string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "vmctl", project+".json")
}

// LoadObservations reads the state file; a missing or unreadable one is no
// observation at all, since Docker's own view remains.
func LoadObservations(path string) map[string]Observation {
	obs := map[string]Observation{}
	if path == "" {
		return obs
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return obs
	}
	if json.Unmarshal(b, &obs) != nil {
		return map[string]Observation{}
	}
	return obs
}

// RecordObservations stores what up saw at a time: a service's healthy
// verdict replaces the earlier one, any other verdict forgets it.
func RecordObservations(path string, rows []ServiceStatus, at time.Time) error {
	if path == "" {
		return nil
	}
	obs := LoadObservations(path)
	for _, r := range rows {
		if r.Health == "healthy" && r.ID != "" {
			obs[r.Service] = Observation{Container: r.ID, Health: r.Health, At: at.UTC()}
		} else {
			delete(obs, r.Service)
		}
	}
	b, err := json.MarshalIndent(obs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("record health in %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("record health in %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record health in %s: %w", path, err)
	}
	return nil
}
