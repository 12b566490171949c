package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmctl/vmctl/internal/engine"
)

type upOptions struct {
	services      []string
	build         bool
	gpu           string
	waitTimeout   time.Duration
	removeOrphans bool
	output        string
	watch         bool
}

func newUpCmd(f *Factory, g *globalOptions) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up [SERVICE...]",
		Short: "Build, create and start the stack, and wait until every service is healthy",
		Example: `  vmctl up                       # the whole stack
  vmctl up backend               # backend and what it depends on
  vmctl up --gpu off --build     # rebuild, OpenVoice in CPU mode
  vmctl up --watch               # then apply develop.watch rules until Ctrl-C`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.services = args
			if o.watch {
				return runUpWatch(cmd.Context(), f, g, o)
			}
			return runUp(cmd.Context(), f, g, o)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.build, "build", false, "build images even when they exist")
	fl.StringVar(&o.gpu, "gpu", "auto", "GPU for services that reserve one: auto, on or off")
	fl.DurationVar(&o.waitTimeout, "wait-timeout", 3*time.Minute, "how long to wait for the stack to become healthy")
	fl.BoolVar(&o.removeOrphans, "remove-orphans", false, "remove containers of services no longer in the stack")
	fl.StringVarP(&o.output, "output", "o", "table", "result format: table or json")
	fl.BoolVar(&o.watch, "watch", false, "after up, watch files as vmctl watch does (Ctrl-C stops watching, the stack stays up)")
	return cmd
}

func runUp(ctx context.Context, f *Factory, g *globalOptions, o *upOptions) error {
	gpu, err := engine.ParseGPUMode(o.gpu)
	if err != nil {
		return usageError{err}
	}
	format, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	pw, err := g.progressWriter(f)
	if err != nil {
		return err
	}
	st, err := f.loadStack(ctx, g)
	if err != nil {
		return err
	}
	selected, err := st.Select(o.services)
	if err != nil {
		return err
	}
	// Before anything changes: a key up would drop is refused, not ignored.
	if err := engine.CheckKeys(st, selected); err != nil {
		return err
	}
	eng, err := f.Engine(ctx)
	if err != nil {
		return err
	}
	var verdict *engine.GPUVerdict
	if gpu != engine.GPUOff {
		if verdict, err = upGPUVerdict(ctx, f, g, st, o.services); err != nil {
			return err
		}
	}
	rows, upErr := eng.Up(ctx, st, engine.UpOptions{
		Services:      o.services,
		Build:         o.build,
		GPU:           gpu,
		GPUReady:      verdict,
		WaitTimeout:   o.waitTimeout,
		RemoveOrphans: o.removeOrphans,
		Progress:      pw,
		Notices:       f.IO.ErrOut,
	})
	pw.Close()
	if rows != nil {
		// So that ps agrees with up until Docker's own check catches up.
		if err := engine.RecordObservations(engine.ObservationsPath(f.stateDir(), st.Name()), rows, time.Now()); err != nil {
			fmt.Fprintf(f.IO.ErrOut, "vmctl: warning: %v: ps shows Docker's health only\n", err)
		}
		if err := printStatuses(f, format, rows); err != nil {
			return err
		}
	}
	return upErr
}

func printStatuses(f *Factory, format outputFormat, rows []engine.ServiceStatus) error {
	if format == outputJSON {
		return writeJSON(f.IO.Out, rows)
	}
	t := newTable(f.IO.Out, f.IO.OutIsTerminal, "SERVICE", "STATE", "HEALTH", "URL")
	for _, r := range rows {
		t.add(r.Service, r.State, dash(r.Health), dash(r.URL))
	}
	return t.flush()
}
