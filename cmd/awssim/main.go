// Command awssim serves internal/awssim, the local AWS that vmctl's tests
// use, on loopback until Ctrl-C, so that a person can rehearse a promotion
// without an AWS account. Like a new account it starts empty: vmctl infra
// apply builds each environment's foundation through its CloudFormation.
// It prints the environment to point the AWS SDKs and CLI (and vmctl) at
// it; with -env-dir it also writes a profile per environment file
// (awssim-ENV, a key of that environment's account). Test infrastructure,
// never a stand-in for AWS.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"

	"github.com/vmctl/vmctl/internal/awssim"
	"github.com/vmctl/vmctl/internal/environment"
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
	envDir := fs.String("env-dir", "", "environment files: a key and a profile (awssim-ENV) for each one's account")
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
	var profiles string
	if *envDir != "" {
		dir, err := os.MkdirTemp("", "awssim-profiles-")
		if err != nil {
			fmt.Fprintf(stderr, "awssim: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if profiles, err = writeProfiles(sim, *envDir, dir); err != nil {
			fmt.Fprintf(stderr, "awssim: %v\n", err)
			return 1
		}
	}
	if *useDocker {
		if api, err := dockerClient(ctx); err != nil {
			fmt.Fprintf(stderr, "awssim: no Docker Engine, so no ECS tasks or container logs: %v\n", err)
		} else {
			sim.UseDocker(api)
		}
	}

	fmt.Fprintf(stdout, "export AWS_ENDPOINT_URL=%s\n", sim.URL())
	if profiles == "" {
		fmt.Fprintf(stdout, "export AWS_ACCESS_KEY_ID=%s\n", *accessKey)
		fmt.Fprintf(stdout, "export AWS_SECRET_ACCESS_KEY=awssim\n")
	} else {
		// Keys in the environment would outrank the profiles.
		fmt.Fprintf(stdout, "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN\n")
	}
	fmt.Fprintf(stdout, "export AWS_REGION=%s\n", *region)
	fmt.Fprintf(stdout, "export AWS_DEFAULT_REGION=%s\n", *region) // the AWS CLI v1 reads this one
	fmt.Fprintf(stdout, "export AWSSIM_REGISTRY=%s\n", sim.RegistryHost())
	fmt.Fprint(stdout, profiles)
	fmt.Fprintf(stderr, "awssim: serving account %s; log in to the registry with\n"+
		"  aws ecr get-login-password | docker login --username AWS --password-stdin %s\n"+
		"awssim: the account is empty; vmctl infra apply --env ENV builds an environment's foundation\n"+
		"awssim: Ctrl-C stops it and removes everything it started\n", *account, sim.RegistryHost())
	<-ctx.Done()
	return 0
}

// writeProfiles registers a key for the account of each environment file
// of kind aws and writes shared credentials and config files with a profile
// awssim-ENV for it (its region, the simulator's endpoint); it returns the
// export lines that point the SDKs at the files.
func writeProfiles(sim *awssim.Sim, envDir, dir string) (string, error) {
	names, err := environment.Names(envDir)
	if err != nil {
		return "", err
	}
	var creds, conf strings.Builder
	for _, name := range names {
		env, err := environment.LoadNamed(envDir, name)
		if err != nil {
			return "", err
		}
		if env.AWS == nil {
			continue
		}
		key := "AKIAAWSSIM" + strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(name))
		sim.AddUser(key, awssim.Principal{Account: env.AWS.AccountID, ARN: "arn:aws:iam::" + env.AWS.AccountID + ":user/awssim-" + name})
		fmt.Fprintf(&creds, "[awssim-%s]\naws_access_key_id = %s\naws_secret_access_key = awssim\n\n", name, key)
		fmt.Fprintf(&conf, "[profile awssim-%s]\nregion = %s\nendpoint_url = %s\n\n", name, env.AWS.Region, sim.URL())
	}
	credFile, confFile := filepath.Join(dir, "credentials"), filepath.Join(dir, "config")
	if err := os.WriteFile(credFile, []byte(creds.String()), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("export AWS_SHARED_CREDENTIALS_FILE=%s\nexport AWS_CONFIG_FILE=%s\n", credFile, confFile), nil
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
