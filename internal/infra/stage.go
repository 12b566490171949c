package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	vmaws "github.com/vmctl/vmctl/internal/aws"
)

// Stager puts a template too large to send inline (over MaxTemplateBody) where
// CloudFormation can read it, and returns its URL.
type Stager func(ctx context.Context, env, body string) (string, error)

// TemplateBucket names the bucket S3Stager keeps templates in, one per account and region,
// as aws cloudformation deploy and rain do.
func TemplateBucket(account, region string) string {
	return "vmctl-cfn-" + account + "-" + region
}

// templateExpiryDays is how long a staged template is kept: CloudFormation reads it once,
// while it makes the change set or the stack.
const templateExpiryDays = 7

// S3Stager stages templates in TemplateBucket(account, region), creating it on first use:
// private, encrypted, objects expiring after a week. Objects are named by environment and
// content hash, so staging the same template twice writes one object.
func S3Stager(c vmaws.TemplateBucket, account, region string) Stager {
	bucket := TemplateBucket(account, region)
	return func(ctx context.Context, env, body string) (string, error) {
		if err := ensureBucket(ctx, c, bucket, region); err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(body))
		key := StackName(env) + "/" + hex.EncodeToString(sum[:]) + ".json"
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: sdkaws.String(bucket), Key: sdkaws.String(key), Body: strings.NewReader(body),
			ContentType: sdkaws.String("application/json"),
		}); err != nil {
			return "", fmt.Errorf("upload the template of stack %s to s3://%s: %s: check the credentials may write to it", StackName(env), bucket, apiMessage(err))
		}
		u := url.URL{Scheme: "https", Host: bucket + ".s3." + region + ".amazonaws.com", Path: "/" + key}
		return u.String(), nil
	}
}

func ensureBucket(ctx context.Context, c vmaws.TemplateBucket, bucket, region string) error {
	_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: sdkaws.String(bucket)})
	if err == nil {
		return nil
	}
	var nf *s3types.NotFound
	var ae smithy.APIError
	if !errors.As(err, &nf) && !(errors.As(err, &ae) && ae.ErrorCode() == "NotFound") {
		return fmt.Errorf("read the template bucket s3://%s: %s: check the credentials may use it", bucket, apiMessage(err))
	}
	in := &s3.CreateBucketInput{Bucket: sdkaws.String(bucket)}
	if region != "us-east-1" { // us-east-1 takes no location constraint
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(region)}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("create the template bucket s3://%s: %s", bucket, apiMessage(err))
	}
	if _, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: sdkaws.String(bucket), PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
		BlockPublicAcls: sdkaws.Bool(true), BlockPublicPolicy: sdkaws.Bool(true), IgnorePublicAcls: sdkaws.Bool(true), RestrictPublicBuckets: sdkaws.Bool(true),
	}}); err != nil {
		return fmt.Errorf("make the template bucket s3://%s private: %s", bucket, apiMessage(err))
	}
	if _, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: sdkaws.String(bucket), LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{
		Rules: []s3types.LifecycleRule{{
			ID: sdkaws.String("templates-expire"), Status: s3types.ExpirationStatusEnabled,
			Filter:     &s3types.LifecycleRuleFilter{Prefix: sdkaws.String("")},
			Expiration: &s3types.LifecycleExpiration{Days: sdkaws.Int32(templateExpiryDays)},
		}},
	}}); err != nil {
		return fmt.Errorf("set the template bucket s3://%s to expire its objects: %s", bucket, apiMessage(err))
	}
	return nil
}
