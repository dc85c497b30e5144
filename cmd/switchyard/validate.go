package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
)

func validateCmd() *cobra.Command {
	var policy string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check service specs and print every problem, with its line (exit 2 on any)",
		Long: `Checks service specs and prints every problem with its line (exit 2 on any).
With --policy, each environment is also held to a worker's policy, as that
worker will hold it: a command, secret variable or host it does not allow.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reach, err := loadReach(policy)
			if err != nil {
				return err
			}
			bad := 0
			for _, path := range args {
				f, err := spec.Load(path)
				var probs spec.Problems
				if err == nil {
					probs = f.ValidateAll()
				} else if !errors.As(err, &probs) {
					return withCode(exitBadInput, err)
				}
				for _, p := range probs {
					fmt.Println(p.Error())
				}
				before := bad
				if len(probs) == 0 { // what only a resolved environment shows: its Compose file
					for _, env := range f.Environments {
						svc, err := starter.ResolveSpec(path, env)
						if err != nil {
							fmt.Printf("%s: environment %s: %v\n", path, env, err)
							bad++
							continue
						}
						for _, p := range reach.Check(svc) {
							fmt.Printf("%s: environment %s: %v\n", path, env, p)
							bad++
						}
					}
				}
				if len(probs) == 0 && bad == before {
					fmt.Printf("%s: ok (environments: %v)\n", path, f.Environments)
				}
				bad += len(probs)
			}
			if bad > 0 {
				return withCode(exitBadInput, fmt.Errorf("%d problem(s) found", bad))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&policy, "policy", "", "also hold each spec to this worker policy file")
	return cmd
}
