package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/stack"
)

func loadYAML(t *testing.T, yaml string) *stack.Stack {
	t.Helper()
	file := filepath.Join(t.TempDir(), "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte(yaml), 0o644))
	st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, ProjectName: "keys"})
	require.NoError(t, err)
	return st
}

// Every key the lists name exists in the compose model: a typo would
// otherwise leave the real key refused and the list silently wrong.
func TestKeyListsNameComposeKeys(t *testing.T) {
	for _, k := range append(slices.Clone(honouredKeys), irrelevantKeys...) {
		assert.Contains(t, composeKeys(), k)
	}
	for k := range keyHints {
		assert.Contains(t, composeKeys(), k)
		assert.NotContains(t, honouredKeys, k)
	}
}

// The cheap host settings reach the container as docker compose maps them.
func TestHostKeysReachTheContainer(t *testing.T) {
	st := loadYAML(t, `services:
  app:
    image: scratch
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    devices: ["/dev/null:/dev/mynull"]
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    sysctls: {net.core.somaxconn: "1024"}
    extra_hosts: ["db.local=10.0.0.2"]
    tmpfs: ["/run:size=64k"]
    shm_size: 128m
    oom_score_adj: 100
    pid: host
    volumes_from: ["data:ro", "container:other"]
  data:
    image: scratch
`)
	svc, err := st.Service("app")
	require.NoError(t, err)
	require.NoError(t, CheckKeys(st, st.Names()))
	sp, err := containerSpec(st, svc, "img", false, nil)
	require.NoError(t, err)
	h := sp.host
	require.Len(t, h.Ulimits, 2)
	assert.Equal(t, "nofile", h.Ulimits[0].Name)
	assert.Equal(t, [2]int64{1024, 2048}, [2]int64{h.Ulimits[0].Soft, h.Ulimits[0].Hard})
	assert.Equal(t, [2]int64{512, 512}, [2]int64{h.Ulimits[1].Soft, h.Ulimits[1].Hard})
	assert.Equal(t, []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "rwm"}}, h.Devices)
	assert.Equal(t, []string{"NET_ADMIN"}, []string(h.CapAdd))
	assert.Equal(t, []string{"ALL"}, []string(h.CapDrop))
	assert.Equal(t, map[string]string{"net.core.somaxconn": "1024"}, h.Sysctls)
	assert.Equal(t, []string{"db.local:10.0.0.2"}, h.ExtraHosts)
	assert.Equal(t, map[string]string{"/run": "size=64k"}, h.Tmpfs)
	assert.Equal(t, int64(128<<20), h.ShmSize)
	assert.Equal(t, 100, h.OomScoreAdj)
	assert.Equal(t, container.PidMode("host"), h.PidMode)
	assert.Equal(t, []string{containerName("keys", "data") + ":ro", "other"}, h.VolumesFrom)
}

// A key up cannot honour is refused in one line naming service and key.
func TestUnsupportedKeysAreRefused(t *testing.T) {
	for yaml, want := range map[string]string{
		"secrets: [pw]":                       "service app: vmctl up does not support secrets: mount the file with volumes (read_only) or pass the value in environment",
		"configs: [conf]":                     "service app: vmctl up does not support configs: mount the file with volumes (read_only)",
		"links: [db]":                         "service app: vmctl up does not support links: services reach each other by name",
		"scale: 3":                            "service app: vmctl up does not support scale 3 (one container per service)",
		"pull_policy: always":                 "pull_policy always (vmctl builds and never pulls)",
		"post_start: [{command: [\"true\"]}]": "service app: vmctl up does not support post_start",
		"deploy: {restart_policy: {condition: any}}": "deploy.restart_policy (use restart)",
	} {
		st := loadYAML(t, "secrets:\n  pw: {file: ./pw}\nconfigs:\n  conf: {file: ./conf}\nservices:\n  db: {image: scratch}\n  app:\n    image: scratch\n    "+yaml+"\n")
		err := CheckKeys(st, st.Names())
		require.Error(t, err, yaml)
		assert.Contains(t, err.Error(), want)
		assert.NotContains(t, err.Error(), "\n")
		svc, _ := st.Service("app")
		_, err = containerSpec(st, svc, "img", false, nil)
		assert.Error(t, err, "create refuses it too: %s", yaml)
	}
}

// The shipped and test stacks use only what up honours.
func TestShippedStacksPassTheKeyCheck(t *testing.T) {
	env := map[string]string{
		"VMCTL_APP_SOURCE": t.TempDir(), "VMCTL_IMAGES": t.TempDir(), "FIXTURE_IMAGE": "fixture:test", "FIXTURE_CONTEXT": t.TempDir(),
		"API_PORT": "18080", "WEB_PORT": "18081",
	}
	for _, file := range []string{"../../compose/compose.yaml", "../../compose/demo.yaml", "testdata/fixture.yaml", "testdata/bench.yaml", "testdata/extctx.yaml"} {
		st, err := stack.Load(context.Background(), stack.LoadOptions{Files: []string{file}, Env: env, Profiles: []string{"*"}})
		require.NoError(t, err, file)
		assert.NoError(t, CheckKeys(st, st.Names()), file)
	}
}
