package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTagValue(t *testing.T) {
	assert.Equal(t, "CVE-2024-1 has no fix yet accepted by ops @alice", TagValue("CVE-2024-1 has no fix yet;\naccepted by ops (@alice)!"))
	assert.Len(t, TagValue(string(make([]byte, 300))+"x"), 1)
	long := ""
	for range 300 {
		long += "a"
	}
	assert.Len(t, TagValue(long), 256)
}
