package release

import (
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
