// Command awssim serves internal/awssim, the local AWS that vmctl's tests
// use, on loopback until Ctrl-C, so that a person can rehearse a promotion
// without an AWS account. It prints the environment to point the AWS SDKs
// and CLI (and vmctl) at it. Test infrastructure, never a stand-in for AWS.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"

	"github.com/vmctl/vmctl/internal/awssim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("awssim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	account := fs.String("account", "123456789012", "the account the access key belongs to")
	region := fs.String("region", "ap-northeast-1", "the region to print for clients")
	accessKey := fs.String("access-key", "AKIAAWSSIMEXAMPLE", "the access key ID to accept (any secret goes)")
	group := fs.String("gpu-group", "openvoice-gpu", `an example Auto Scaling group of GPU instances ("" for none)`)
	size := fs.Int("gpu-instances", 1, "instances in the example group, each a g4dn.xlarge with one Tesla T4")
	useDocker := fs.Bool("docker", true, "run ECS tasks and read their logs on the local Docker Engine")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logrus.SetLevel(logrus.WarnLevel) // the registry logs every request at info

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	sim := awssim.New()
	defer sim.Close()
	sim.AddUser(*accessKey, awssim.Principal{Account: *account, ARN: "arn:aws:iam::" + *account + ":user/awssim"})
	if *useDocker {
		if api, err := dockerClient(ctx); err != nil {
			fmt.Fprintf(stderr, "awssim: no Docker Engine, so no ECS tasks or container logs: %v\n", err)
		} else {
			sim.UseDocker(api)
		}
	}
	if *group != "" {
		insts := make([]awssim.Instance, *size)
		for i := range insts {
			insts[i] = awssim.Instance{GPU: awssim.T4()}
		}
		for _, in := range sim.AddAutoScalingGroup(*group, 0, max(*size, 5), *size, insts...) {
			fmt.Fprintf(stderr, "awssim: instance %s in %s (%s, %s, driver %s)\n", in.ID, *group, in.InstanceType, in.GPU.Model, in.GPU.DriverVersion)
		}
	}

	fmt.Fprintf(stdout, "export AWS_ENDPOINT_URL=%s\n", sim.URL())
	fmt.Fprintf(stdout, "export AWS_ACCESS_KEY_ID=%s\n", *accessKey)
	fmt.Fprintf(stdout, "export AWS_SECRET_ACCESS_KEY=awssim\n")
	fmt.Fprintf(stdout, "export AWS_REGION=%s\n", *region)
	fmt.Fprintf(stdout, "export AWS_DEFAULT_REGION=%s\n", *region) // the AWS CLI v1 reads this one
	fmt.Fprintf(stdout, "export AWSSIM_REGISTRY=%s\n", sim.RegistryHost())
	fmt.Fprintf(stderr, "awssim: serving account %s; log in to the registry with\n"+
		"  aws ecr get-login-password | docker login --username AWS --password-stdin %s\n"+
		"awssim: Ctrl-C stops it and removes everything it started\n", *account, sim.RegistryHost())
	<-ctx.Done()
	return 0
}

func dockerClient(ctx context.Context) (*client.Client, error) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := api.Ping(ctx); err != nil {
		return nil, err
	}
	return api, nil
}
