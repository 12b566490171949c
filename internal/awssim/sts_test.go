package awssim_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/awssim/simtest"
)

func TestSTSGetCallerIdentity(t *testing.T) {
	sim := awssim.New()
	defer sim.Close()
	sim.AddUser("AKIAEXAMPLE", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/ci"})
	out, err := sts.NewFromConfig(simtest.Config(t, sim, "AKIAEXAMPLE")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	assert.Equal(t, "111111111111", sdkaws.ToString(out.Account))
	assert.Equal(t, "arn:aws:iam::111111111111:user/ci", sdkaws.ToString(out.Arn))

	_, err = sts.NewFromConfig(simtest.Config(t, sim, "AKIAOTHER")).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae))
	assert.Equal(t, "InvalidClientTokenId", ae.ErrorCode())
}

// Throttling and 5xx arrive as AWS sends them, so the SDK's retryer retries.
func TestFaultsAreRetriedByTheSDK(t *testing.T) {
	sim := awssim.New()
	defer sim.Close()
	sim.AddUser("AKIAEXAMPLE", awssim.Principal{Account: "111111111111", ARN: "arn:aws:iam::111111111111:user/ci"})
	client := sts.NewFromConfig(simtest.Config(t, sim, "AKIAEXAMPLE"))

	sim.InjectFault("STS.GetCallerIdentity", awssim.Fault{Throttle: true, Times: 2})
	_, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	assert.Equal(t, 3, sim.Calls("STS.GetCallerIdentity"), "two throttled, then answered")

	sim.InjectFault("STS.GetCallerIdentity", awssim.Fault{Status: http.StatusServiceUnavailable})
	_, err = client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae))
	assert.Equal(t, "ServiceUnavailable", ae.ErrorCode())
	assert.Equal(t, 3+3, sim.Calls("STS.GetCallerIdentity"), "the standard retryer tries three times")
}

func TestUnknownActionIsLoud(t *testing.T) {
	sim := awssim.New()
	defer sim.Close()
	resp, err := http.PostForm(sim.URL(), map[string][]string{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "unsigned: refused before the action is looked up")

	req, _ := http.NewRequest(http.MethodPost, sim.URL(), nil)
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.ListClusters")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "UnknownOperationException", resp.Header.Get("X-Amzn-ErrorType"))
}
