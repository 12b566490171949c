package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/stretchr/testify/require"

	"github.com/vmctl/vmctl/internal/mototest"
)

// BenchmarkInfraApplyMoto measures vmctl infra apply end to end against moto_server on
// loopback — render, account check, preview, CreateStack or change set, events until done —
// for the dev environment's real template (cut in flight to moto's types): the first apply
// of an empty account (create), an unchanged apply, and one with a size changed (update).
// Each iteration of create starts a fresh moto, outside the timer. moto does the work of
// CloudFormation synchronously, inside CreateStack and ExecuteChangeSet, so these are vmctl's
// time plus moto's, without AWS's provisioning.
//
//	go test ./internal/cli/ -run '^$' -bench InfraApplyMoto -benchtime 3x
func BenchmarkInfraApplyMoto(b *testing.B) {
	type env struct {
		apply func()
		dir   string
		cert  string
	}
	setup := func(b *testing.B) env {
		b.Helper()
		srv := mototest.Start(b, "111111111111")
		cfg := srv.Config(b)
		cert, err := acm.NewFromConfig(cfg).RequestCertificate(context.Background(), &acm.RequestCertificateInput{DomainName: sdkaws.String("dev.vmapp.example.com")})
		require.NoError(b, err)
		e := env{dir: b.TempDir(), cert: sdkaws.ToString(cert.CertificateArn)}
		// moto loads its CloudFormation backend on the first call (about 1.5 s): not vmctl's time.
		_, _ = cloudformation.NewFromConfig(cfg).DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{})
		adapter := &motoAdapter{}
		e.apply = func() {
			var out, errOut bytes.Buffer
			f := testFactory(nil, &out, &errOut)
			f.AWSConfig = adapter.config(srv, b)
			code := Run(context.Background(), f, []string{"-f", "../../compose/compose.yaml", "--env-dir", e.dir, "--progress", "quiet", "infra", "apply", "--env", "dev"})
			if code != ExitOK {
				b.Fatalf("infra apply: exit %d: %s", code, errOut.String())
			}
		}
		infraEnvDir(b, e.dir, withCertificate(e.cert))
		return e
	}
	b.Run("create", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := setup(b)
			b.StartTimer()
			e.apply()
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		e := setup(b)
		e.apply()
		for b.Loop() {
			e.apply()
		}
	})
	b.Run("one-size", func(b *testing.B) {
		e := setup(b)
		e.apply()
		grow := false
		for b.Loop() {
			b.StopTimer()
			grow = !grow
			infraEnvDir(b, e.dir, func(s string) string {
				s = withCertificate(e.cert)(s)
				if grow {
					s = strings.Replace(s, "      storage_gib: 50", "      storage_gib: 60", 1)
				}
				return s
			})
			b.StartTimer()
			e.apply()
		}
	})
}
