// Package aws holds narrow interfaces over the aws-sdk-go-v2 clients vmctl
// uses, and the checks every cloud command makes first: that credentials
// resolve, and that they belong to the account the environment names.
package aws

import (
	"context"
	"errors"
	"fmt"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// LoadConfig resolves credentials the standard way (environment, shared
// profiles, SSO, instance roles) for a region; AWS_ENDPOINT_URL and
// AWS_PROFILE are honoured as by every AWS tool.
func LoadConfig(ctx context.Context, region string, opts ...func(*config.LoadOptions) error) (sdkaws.Config, error) {
	// The SDK's own warnings (an IMDS fallback, say) would interleave with
	// vmctl's output; failures still come back as errors.
	opts = append([]func(*config.LoadOptions) error{config.WithRegion(region), config.WithLogger(logging.Nop{}), config.WithRetryer(Retryer)}, opts...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("load AWS configuration: %w: check AWS_PROFILE and ~/.aws/config", err)
	}
	return cfg, nil
}

// Retryer retries throttling and 5xx harder than the SDK's default (8
// attempts instead of 3, no client-side retry quota): a deploy makes
// hundreds of calls, and one exhausted retry must not fail a rollout.
func Retryer() sdkaws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 8
		o.RateLimiter = ratelimit.None
	})
}

// STS is the part of the STS client vmctl uses.
type STS interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, opts ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// Identity is who the credentials belong to.
type Identity struct {
	Account string `json:"account"`
	ARN     string `json:"arn"`
	UserID  string `json:"user_id"`
}

// CallerIdentity asks STS who the credentials are.
func CallerIdentity(ctx context.Context, api STS) (Identity, error) {
	out, err := api.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return Identity{}, fmt.Errorf("AWS credentials were refused: %s: %s: refresh them (aws sso login, or check AWS_PROFILE)", ae.ErrorCode(), ae.ErrorMessage())
		}
		return Identity{}, fmt.Errorf("AWS credentials do not resolve: %w: configure a profile (aws configure sso) or set AWS_PROFILE", err)
	}
	return Identity{Account: sdkaws.ToString(out.Account), ARN: sdkaws.ToString(out.Arn), UserID: sdkaws.ToString(out.UserId)}, nil
}

// CheckAccount refuses credentials of an account other than the one the
// environment names, before anything is touched.
func CheckAccount(ctx context.Context, api STS, env, want string) (Identity, error) {
	id, err := CallerIdentity(ctx, api)
	if err != nil {
		return id, err
	}
	if id.Account != want {
		return id, fmt.Errorf("credentials are for account %s (%s), but environment %s is account %s: switch profile (AWS_PROFILE) before touching %s", id.Account, id.ARN, env, want, env)
	}
	return id, nil
}
