package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/timer"
)

func init() { registerSub("timer", newTimerShowScheduleCommand) }

// newTimerShowScheduleCommand is `isotope timer showschedule`: the next
// times a cron spec fires, computed by the same parser the timer runs,
// printed as Fission prints them. It needs no server.
func newTimerShowScheduleCommand(g *Globals) *cobra.Command {
	var spec string
	var rounds int
	cmd := &cobra.Command{
		Use:   "showschedule --cron SPEC",
		Short: "Show the next times a cron spec fires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("cron", spec); err != nil {
				return err
			}
			if rounds < 1 {
				return fmt.Errorf("--round %d: must be at least 1", rounds)
			}
			now := time.Now()
			times, err := timer.NextTimes(spec, rounds, now)
			if err != nil {
				return fmt.Errorf("--cron: %v", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Current Server Time: \t%s\n", now.Format(time.RFC3339))
			for i, t := range times {
				fmt.Fprintf(out, "Next %d invocation: \t%s\n", i+1, t.Format(time.RFC3339))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&spec, "cron", "", `cron spec: 5 fields, 6 with seconds, or a descriptor ("@every 1m", "@hourly")`)
	cmd.Flags().IntVar(&rounds, "round", 1, "how many upcoming times to show")
	return cmd
}
