// Package cli holds vmctl's cobra commands: each fills an options struct
// from flags and calls a run function that tests call directly. Errors map
// to exit codes in one place (Main).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/spf13/cobra"

	vmaws "github.com/vmctl/vmctl/internal/aws"
	"github.com/vmctl/vmctl/internal/engine"
	"github.com/vmctl/vmctl/internal/environment"
	"github.com/vmctl/vmctl/internal/progress"
	"github.com/vmctl/vmctl/internal/release"
)

// Exit codes. Checks (gpu, doctor, diff, verify) use 3 for a negative
// verdict and 4 when they could not tell, so CI can gate on them.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitUsage     = 2
	ExitNotReady  = 3 // gpu/doctor: not ready; diff: drift found
	ExitUnknown   = 4 // the check could not reach a verdict
	ExitCancelled = 130
)

// Main runs vmctl with the process's arguments and streams.
func Main() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "\ncancelling: cleaning up (press Ctrl-C again to quit at once)")
		cancel()
		<-sigs
		os.Exit(ExitCancelled)
	}()
	f := NewFactory(SystemIO())
	return Run(ctx, f, os.Args[1:])
}

// Run executes one command line and returns its exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	// --debug wraps the factory's AWS configuration for this command line only.
	defer func(resolve func(context.Context, *environment.Environment) (sdkaws.Config, error)) {
		f.AWSConfig = resolve
	}(f.AWSConfig)
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	return reportError(f.IO.ErrOut, cmd, err, ctx)
}

// usageError marks a bad command line (exit 2).
type usageError struct{ error }

// exitError carries an exit code of its own (the GPU verdict, parity drift).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func reportError(w io.Writer, cmd *cobra.Command, err error, ctx context.Context) int {
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		fmt.Fprintln(w, "vmctl: cancelled")
		return ExitCancelled
	}
	var ue usageError
	if errors.As(err, &ue) || isFlagError(err) {
		fmt.Fprintf(w, "vmctl: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return ExitUsage
	}
	fmt.Fprintf(w, "vmctl: %s\n", oneLine(err))
	var se *engine.ServiceError
	if errors.As(err, &se) && se.Logs != "" {
		fmt.Fprintf(w, "last log lines of %s:\n", se.Service)
		for _, l := range strings.Split(se.Logs, "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintf(w, "see more with: vmctl logs %s\n", se.Service)
	}
	var xe *exitError
	if errors.As(err, &xe) {
		return xe.code
	}
	return ExitError
}

// oneLine folds joined errors so every error prints on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func isFlagError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown shorthand flag") ||
		strings.HasPrefix(s, "invalid argument") || strings.HasPrefix(s, "flag needs an argument") ||
		strings.HasPrefix(s, "unknown command") || strings.Contains(s, "accepts ") || strings.HasPrefix(s, "required flag")
}

// globalOptions are the compose-style flags every stack command shares.
type globalOptions struct {
	files       []string
	projectName string
	profiles    []string
	projectDir  string
	envDir      string
	progress    string
	releaseDir  string
	noColor     bool
	debug       bool // log every AWS request line (--debug)
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "vmctl",
		Short: "Run the Video Message App locally and ship the same images to AWS",
		Long: `vmctl runs the Video Message App's stack on the local Docker Engine (with
the GPU when the host has one) and promotes the very same images to ECR and ECS.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for vmctl", args[0])}
		}
		return c.Help()
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRun = func(*cobra.Command, []string) {
		if g.debug {
			resolve := f.AWSConfig
			f.AWSConfig = func(ctx context.Context, env *environment.Environment) (sdkaws.Config, error) {
				cfg, err := resolve(ctx, env)
				if err == nil {
					vmaws.DebugLog(&cfg, f.IO.ErrOut)
				}
				return cfg, err
			}
		}
	}
	// Stack flags come before the command, as with docker compose, so that
	// `vmctl -f demo.yaml logs -f` means file, then follow.
	root.TraverseChildren = true
	pf := root.Flags()
	pf.StringArrayVarP(&g.files, "file", "f", nil, "compose file (repeatable; default: compose.yaml, or compose/compose.yaml)")
	pf.StringVarP(&g.projectName, "project-name", "p", "", "project name (default: the compose file's name, or its directory)")
	pf.StringArrayVar(&g.profiles, "profile", nil, "enable a compose profile (repeatable)")
	pf.StringVar(&g.projectDir, "project-directory", "", "working directory for relative paths (default: the current directory)")
	// These have no clash with a command's own flags, so they go anywhere.
	pp := root.PersistentFlags()
	pp.StringVar(&g.envDir, "env-dir", "environments", "directory of the environment files")
	pp.StringVar(&g.progress, "progress", "auto", "progress output: auto, tty, plain, json or quiet")
	pp.BoolVar(&g.noColor, "no-color", false, "no colours (NO_COLOR set to anything does the same)")
	pp.BoolVar(&g.debug, "debug", false, "log every AWS request to stderr: operation, status, request id, attempt (never a body)")
	pp.StringVar(&g.releaseDir, "release-dir", release.DefaultDir, "directory of the release manifests")

	root.AddCommand(
		newUpCmd(f, g),
		newWatchCmd(f, g),
		newDownCmd(f, g),
		newPsCmd(f, g),
		newLogsCmd(f, g),
		newBuildCmd(f, g),
		newReleasesCmd(f, g),
		newPushCmd(f, g),
		newDeployCmd(f, g),
		newShipCmd(f, g),
		newVerifyCmd(f, g),
		newPromoteCmd(f, g),
		newRollbackCmd(f, g),
		newStatusCmd(f, g),
		newConfigCmd(f, g),
		newGPUCmd(f, g),
		newDoctorCmd(f, g),
		newPlanCmd(f, g),
		newDiffCmd(f, g),
		newCICmd(f, g),
		newInfraCmd(f, g),
		newVersionCmd(f),
	)
	addCompletions(root, f, g)
	return root
}

func (g *globalOptions) progressWriter(f *Factory) (progress.Writer, error) {
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return nil, usageError{err}
	}
	return progress.NewWith(mode, f.IO.ErrOut, g.progressOptions(f)), nil
}

// progressOptions describe the error stream's terminal: the live view needs
// its width and cursor movement, and NO_COLOR or --no-color turn colours off.
func (g *globalOptions) progressOptions(f *Factory) progress.Options {
	term, _ := f.LookupEnv("TERM")
	return progress.Options{
		Terminal: f.IO.ErrIsTerminal,
		Dumb:     term == "dumb",
		Color:    g.color(f),
		Width:    f.IO.ErrWidth,
	}
}

// color says whether output may be coloured: not with --no-color, nor when
// NO_COLOR is set to anything but the empty string (no-color.org).
func (g *globalOptions) color(f *Factory) bool {
	v, _ := f.LookupEnv("NO_COLOR")
	return !g.noColor && v == ""
}
