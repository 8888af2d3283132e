package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haven-dr/haven/internal/api"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "Machines (last point, RPO, consistency), agents, plans, alerts, running jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MACHINE\tAGENT\tLAST POINT\tCONSISTENCY\tRPO\tSTANDBY")
			for _, m := range st.Machines {
				rpo := "unknown"
				if m.RPOSeconds != nil {
					rpo = (time.Duration(*m.RPOSeconds) * time.Second).String()
				}
				sb := "-"
				if m.Standby != "" {
					sb = "at " + short(m.Standby)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Agent, short(m.LastPoint), m.Consistency, rpo, sb)
			}
			w.Flush()
			for _, m := range st.Machines {
				for _, p := range m.Preserved {
					fmt.Fprintf(cmd.OutOrStdout(), "machine %s: preserved point %s holds the old primary's disks from before a failback (kept until `haven point release %s %s`)\n", m.Name, p, m.Name, p)
				}
			}
			for _, m := range st.Machines {
				for _, a := range m.Encryption {
					if a.Open {
						fmt.Fprintf(cmd.OutOrStdout(), "machine %s: ENCRYPTION SUSPECTED from point %s (%d suspect points); last clean point %s (--point last-clean; `haven alert close %s %s` when done)\n",
							m.Name, a.FirstSuspect, a.Suspect, a.LastClean, m.Name, a.FirstSuspect)
					}
				}
			}
			for _, m := range st.Machines {
				for _, r := range m.Recovered {
					fmt.Fprintln(cmd.OutOrStdout(), recoveredLine(m.Name, r))
				}
			}
			for _, a := range st.Agents {
				hb := "never"
				if a.LastHeartbeat != nil {
					hb = time.Since(*a.LastHeartbeat).Round(time.Second).String() + " ago"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "agent %s: healthy=%v, last heartbeat %s\n", a.Name, a.Healthy, hb)
			}
			for _, c := range st.Copies {
				fmt.Fprintln(cmd.OutOrStdout(), copyLine(c))
			}
			for _, p := range st.Plans {
				extra := ""
				if p.Test != "" {
					extra = ", test copy " + p.Test
				}
				fmt.Fprintf(cmd.OutOrStdout(), "plan %s: %s%s\n", p.Plan, p.Phase, extra)
			}
			for _, j := range st.Jobs {
				fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s of %s, %s\n", j.ID, j.Type, j.Plan, j.State)
			}
			for _, d := range st.DNSServers {
				fmt.Fprintln(cmd.OutOrStdout(), dnsServerLine(d))
			}
			for _, a := range st.Alerts {
				fmt.Fprintf(cmd.OutOrStdout(), "ALERT: %s\n", a)
			}
			return nil
		},
	}
	f.add(c)
	return c
}

// dnsServerLine is one traffic manager server: reachable, its newest
// change's generation and what it answers for each profile.
func dnsServerLine(d api.DNSServerStatus) string {
	if !d.Reachable {
		return fmt.Sprintf("dns %s: UNREACHABLE (%s)", d.Name, d.Error)
	}
	var as []string
	for _, a := range d.Answers {
		v := strings.Join(a.Answers, ",")
		if a.Error != "" {
			v = "error: " + a.Error
		}
		as = append(as, a.Profile+" -> "+v)
	}
	return fmt.Sprintf("dns %s: reachable, generation %d; %s", d.Name, d.Generation, strings.Join(as, "; "))
}

func short(id string) string {
	if len(id) > 24 {
		return id[:24]
	}
	if id == "" {
		return "-"
	}
	return id
}

func copyLine(c api.CopyStatus) string {
	lag := "unknown"
	if c.LagSeconds != nil {
		lag = (time.Duration(*c.LagSeconds) * time.Second).String()
	}
	line := fmt.Sprintf("copy %s (%s): lag %s", c.Name, c.Vault, lag)
	if c.LastSuccess != nil {
		line += ", last copied " + time.Since(*c.LastSuccess).Round(time.Second).String() + " ago"
	}
	if c.Error != "" {
		line += ", failing: " + c.Error
	}
	if len(c.Problems) > 0 {
		line += fmt.Sprintf(", %d damaged source objects not copied", len(c.Problems))
	}
	return line
}
