package release_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/release"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestLoad(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"a manifest", `{"id":"r42","revision":"abc","images":{"backend":{"repository":"vmapp/backend","digest":"` + digest + `"},"frontend":{}}}`, ""},
		{"a digest that is a tag", `{"images":{"backend":{"digest":"latest"}}}`, `images.backend.digest "latest" is not sha256: and 64 hex digits`},
		{"an ID that is no tag", `{"id":"r 42"}`, `id "r 42" is not a valid image tag`},
		{"a repository with capitals", `{"images":{"backend":{"repository":"VMapp/backend"}}}`, `images.backend.repository "VMapp/backend" is not a repository name`},
		{"an unknown field", `{"id":"r1","digests":{}}`, `unknown field "digests"`},
		{"not JSON", `id: r1`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.json")
			require.NoError(t, os.WriteFile(path, []byte(tt.json), 0o644))
			rel, err := release.Load(path)
			if tt.want != "" {
				require.ErrorContains(t, err, tt.want)
				assert.Contains(t, err.Error(), path, "the error names the file")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, &release.Release{ID: "r42", Revision: "abc", Images: map[string]release.Image{
				"backend": {Repository: "vmapp/backend", Digest: digest}, "frontend": {},
			}}, rel)
		})
	}
	_, err := release.Load(filepath.Join(t.TempDir(), "none.json"))
	require.ErrorContains(t, err, "read release: open")
}
