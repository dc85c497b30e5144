package main

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
)

// binaryBuildID names this build: its module version when it has one,
// else its VCS revision and a hash of Go's build ID (which changes with
// every change to the code), so two different builds never share a name.
func binaryBuildID() string {
	info, ok := debug.ReadBuildInfo()
	if ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	rev := "dev"
	if ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				rev = s.Value[:7]
			}
		}
	}
	return rev + "-" + goBuildIDHash()
}

// goBuildIDHash reads the Go build ID note of this executable (a few bytes,
// not the whole file) and returns 8 hex digits of its hash.
func goBuildIDHash() string {
	exe, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	f, err := elf.Open(exe)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return "unknown"
	}
	b, err := sec.Data()
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func orUnversioned(id string) string {
	if id == "" {
		return "unversioned"
	}
	return id
}

// workerCurrentCmd shows the worker deployment's builds, or makes one current.
func workerCurrentCmd(c *conn) *cobra.Command {
	var deploymentName string
	cmd := &cobra.Command{
		Use:   "current [BUILD_ID]",
		Short: "Show the worker deployment's builds, or make BUILD_ID the one new rollouts start on",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			if deploymentName == "" {
				deploymentName = c.taskQueue
			}
			h := cl.WorkerDeploymentClient().GetHandle(deploymentName)
			if len(args) == 1 {
				res, err := h.SetCurrentVersion(cmd.Context(), client.WorkerDeploymentSetCurrentVersionOptions{BuildID: args[0]})
				if err != nil {
					return fmt.Errorf("worker deployment %s: make build %s current: %w (is a worker of that build running on task queue %s?)", deploymentName, args[0], err, c.taskQueue)
				}
				prev := "none"
				if res.PreviousVersion != nil {
					prev = res.PreviousVersion.BuildID
				}
				fmt.Printf("worker deployment %s: build %s is current (was %s); running rollouts finish on the build that started them\n", deploymentName, args[0], prev)
				return nil
			}
			d, err := h.Describe(cmd.Context(), client.WorkerDeploymentDescribeOptions{})
			if err != nil {
				return fmt.Errorf("worker deployment %s: %w", deploymentName, err)
			}
			cur := ""
			if v := d.Info.RoutingConfig.CurrentVersion; v != nil {
				cur = v.BuildID
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BUILD\tCURRENT\tSTATUS\tCREATED")
			for _, v := range d.Info.VersionSummaries {
				mark := ""
				if v.Version.BuildID == cur {
					mark = "*"
				}
				status := "active"
				switch {
				case v.Version.BuildID == cur:
					status = "new rollouts start here"
				case v.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDraining:
					status = "draining: rollouts pinned to it still run"
				case v.DrainageStatus == client.WorkerDeploymentVersionDrainageStatusDrained:
					status = "drained: its workers can be stopped"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Version.BuildID, mark, status, v.CreateTime.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&deploymentName, "deployment-name", "", "the Temporal worker deployment (default: the task queue)")
	return cmd
}
