package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"
)

// The server answers as the account it was started for.
func TestStartServesTheAccount(t *testing.T) {
	s := Start(t, "333333333333")
	out, err := sts.NewFromConfig(s.Config(t)).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	require.Equal(t, "333333333333", *out.Account)
}
