package release

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	idA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestStoreKeepsReleasesImmutable(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	_, err := s.Latest()
	require.ErrorIs(t, err, ErrNotFound)

	old := Release{ID: "r1", Revision: "abc", Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Images: map[string]Image{"backend": {ImageID: idA}}}
	newer := Release{ID: "r2", Revision: "def", Created: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Images: map[string]Image{"backend": {ImageID: idB}}}
	require.NoError(t, s.Save(old))
	require.NoError(t, s.Save(newer))
	require.ErrorContains(t, s.Save(old), "releases are immutable")

	all, err := s.List()
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, "r2", all[0].ID, "newest first")

	r, err := s.RecordDigests("r1", map[string]string{"backend": idB})
	require.NoError(t, err)
	assert.Equal(t, idB, r.Images["backend"].Digest)
	got, err := s.Get("r1")
	require.NoError(t, err)
	assert.Equal(t, idA, got.Images["backend"].ImageID)
	assert.Equal(t, idB, got.Images["backend"].Digest)

	_, err = s.RecordDigests("r1", map[string]string{"backend": idA})
	require.ErrorContains(t, err, "releases are immutable")
	_, err = s.RecordDigests("r1", map[string]string{"frontend": idA})
	require.ErrorContains(t, err, "has no image for frontend")
	_, err = s.Get("nope")
	require.ErrorIs(t, err, ErrNotFound)

	require.ErrorContains(t, s.Save(Release{ID: "bad id!", Images: map[string]Image{}}), "not a valid image tag")
}

func TestStoreRefusesIDsThatAreNotReleaseIDs(t *testing.T) {
	dir := t.TempDir()
	s := Store{Dir: filepath.Join(dir, "releases")}
	require.NoError(t, s.Save(Release{ID: "20261130T041500Z-3f9c2a1b7d4e", Images: map[string]Image{"backend": {ImageID: idA}}}))
	// A manifest outside the store, which a path-like id would reach.
	outside := Release{ID: "x", Images: map[string]Image{"backend": {ImageID: idA}}}
	b, err := json.Marshal(outside)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x.json"), b, 0o644))

	for _, id := range []string{"../x", "../../x", "/etc/passwd", "a/b", "..", ".hidden", "a..b", "", "r 1", strings.Repeat("a", 129)} {
		t.Run(id, func(t *testing.T) {
			_, err := s.Get(id)
			require.ErrorContains(t, err, "not a release id")
			assert.Contains(t, err.Error(), fmt.Sprintf("release %q", id))
			assert.NotErrorIs(t, err, ErrNotFound)
			_, err = s.RecordDigests(id, map[string]string{"backend": idB})
			require.ErrorContains(t, err, "not a release id")
		})
	}
	for _, id := range []string{"20261130T041500Z-3f9c2a1b7d4e", "r1", "v1.2.3", "_r"} {
		assert.NoError(t, ValidateID(id), id)
	}
}

func TestStoreManifestIDMustBeItsFileName(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	require.NoError(t, s.Save(Release{ID: "r1", Images: map[string]Image{}}))
	require.NoError(t, os.Rename(filepath.Join(s.Dir, "r1.json"), filepath.Join(s.Dir, "r2.json")))

	_, err := s.Get("r2")
	require.ErrorContains(t, err, `its id is "r1", not "r2" as its file name says`)
	assert.Contains(t, err.Error(), filepath.Join(s.Dir, "r2.json"))
	assert.NotContains(t, err.Error(), "\n")
	_, err = s.List()
	require.ErrorContains(t, err, `its id is "r1", not "r2"`)
}

func TestStoreWritesThroughAFreshTemporaryFile(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	require.NoError(t, s.Save(Release{ID: "r1", Images: map[string]Image{"backend": {ImageID: idA}}}))
	// A fixed temporary name could be taken already, by a stale file or a link elsewhere.
	require.NoError(t, os.Mkdir(filepath.Join(s.Dir, "r1.json.tmp"), 0o755))

	_, err := s.RecordDigests("r1", map[string]string{"backend": idB})
	require.NoError(t, err)
	got, err := s.Get("r1")
	require.NoError(t, err)
	assert.Equal(t, idB, got.Images["backend"].Digest)

	info, err := os.Stat(filepath.Join(s.Dir, "r1.json"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())
	entries, err := os.ReadDir(s.Dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"r1.json", "r1.json.tmp"}, names, "no temporary file is left behind")
}

// An override is appended to the manifest; the images stay as they were.
func TestRecordOverride(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	r := Release{ID: "r1", Images: map[string]Image{"web": {ImageID: "sha256:" + strings.Repeat("a", 64)}}}
	require.NoError(t, s.Save(r))
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	_, err := s.RecordOverride("r1", Override{Environment: "prod", Action: "deploy", Reason: "修正待ち", At: at, Blocked: []string{"web sha256:…: scan FAILED"}})
	require.NoError(t, err)
	got, err := s.Get("r1")
	require.NoError(t, err)
	require.Len(t, got.Overrides, 1)
	assert.Equal(t, "修正待ち", got.Overrides[0].Reason)
	assert.Equal(t, r.Images, got.Images)
	_, err = s.RecordOverride("../x", Override{})
	assert.ErrorContains(t, err, "not a release id")
}
