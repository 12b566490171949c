package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	awsecs "github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/stretchr/testify/assert"

	"github.com/vmctl/vmctl/internal/ecs"
)

// The hash covers what is set and nothing else: the fields a registration leaves
// unset (and any the SDK adds later, unset) are not in it, nor is the tag carrying it.
func TestSpecHashIgnoresUnsetFields(t *testing.T) {
	in := awsecs.RegisterTaskDefinitionInput{
		Family:               sdkaws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: sdkaws.String("web"), Image: sdkaws.String("r/web@sha256:00")}},
		Tags:                 []ecstypes.Tag{{Key: sdkaws.String(SpecTag), Value: sdkaws.String("old")}},
	}
	canonical := `{"ContainerDefinitions":[{"Image":"r/web@sha256:00","Name":"web"}],"Family":"web"}`
	sum := sha256.Sum256([]byte(canonical))
	assert.Equal(t, hex.EncodeToString(sum[:]), SpecHash(in), "the hash of exactly the set fields")

	// A field the SDK adds arrives unset, as these unset ones are: the hash stays.
	in.PidMode, in.IpcMode, in.RuntimePlatform = "", "", nil
	assert.Equal(t, hex.EncodeToString(sum[:]), SpecHash(in))
	b, err := ecs.CanonicalJSON(in.ContainerDefinitions[0])
	assert.NoError(t, err)
	assert.NotContains(t, string(b), "null")

	// Any set field does change it.
	in.Cpu = sdkaws.String("256")
	assert.NotEqual(t, hex.EncodeToString(sum[:]), SpecHash(in))
}
