package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
)

func validateCmd() *cobra.Command {
	var policy string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check service specs, release files, roles and worker policies; print every problem, with its line (exit 2 on any)",
		Long: `Checks each file as what it is, told by its first key: a service spec
(service:), a release (release:, with each service's spec), a roles file
(roles:, delegates:) or a worker policy (commands:, env:, hosts:, compose:).
Prints every problem with its line, and exits 2 on any: validate
deployments/*.yaml checks a whole directory.
With --policy, each service environment (a release's too) is also held to a
worker's policy, as that worker will hold it: a command, secret variable or
host it does not allow.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reach, err := loadReach(policy)
			if err != nil {
				return err
			}
			bad := 0
			for _, path := range args {
				kind, err := fileKind(path)
				if err != nil {
					return withCode(exitBadInput, err)
				}
				var n int
				switch kind {
				case "release":
					n, err = validateRelease(path, reach)
				case "roles":
					n, err = validateSimple(path, "roles", func() (string, error) {
						p, err := access.Load(path)
						if err != nil {
							return "", err
						}
						return fmt.Sprintf("%d role(s), %d delegate(s)", len(p.Roles), len(p.Delegates)), nil
					})
				case "policy":
					n, err = validateSimple(path, "worker policy", func() (string, error) {
						r, err := spec.LoadReach(path)
						if err != nil {
							return "", err
						}
						return fmt.Sprintf("%d command path(s), %d variable(s), %d host(s)", len(r.Commands), len(r.Env), len(r.Hosts)), nil
					})
				default:
					n, err = validateService(path, reach)
				}
				if err != nil {
					return withCode(exitBadInput, err)
				}
				bad += n
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

// fileKind tells a file's kind by its top-level keys: service (the
// default, whose own errors then name what is missing), release, roles or
// policy.
func fileKind(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return "service", nil // the spec's parser reports the syntax error with its line
	}
	has := func(keys ...string) bool {
		return slices.ContainsFunc(keys, func(k string) bool { _, ok := top[k]; return ok })
	}
	switch {
	case has("service"):
		return "service", nil
	case has("release"):
		return "release", nil
	case has("roles", "delegates"):
		return "roles", nil
	case has("commands", "env", "hosts", "compose") && !has("run", "router", "rollout"):
		return "policy", nil
	}
	return "service", nil
}

// problemsOf prints a load error's problems (or the error) and counts them.
func problemsOf(err error) int {
	var probs spec.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Println(p.Error())
		}
		return len(probs)
	}
	fmt.Println(err)
	return 1
}

func validateSimple(path, what string, load func() (string, error)) (int, error) {
	summary, err := load()
	if err != nil {
		return problemsOf(err), nil
	}
	fmt.Printf("%s: ok (%s: %s)\n", path, what, summary)
	return 0, nil
}

// validateService checks a service spec, and each environment against the policy.
func validateService(path string, reach *spec.Reach) (int, error) {
	f, err := spec.Load(path)
	var probs spec.Problems
	if err == nil {
		probs = f.ValidateAll()
	} else if !errors.As(err, &probs) {
		return 0, err
	}
	for _, p := range probs {
		fmt.Println(p.Error())
	}
	if len(probs) > 0 {
		return len(probs), nil
	}
	bad := 0
	for _, env := range f.Environments { // what only a resolved environment shows: its Compose file
		bad += checkEnvironment(path, env, reach)
	}
	if bad == 0 {
		fmt.Printf("%s: ok (environments: %v)\n", path, f.Environments)
	}
	return bad, nil
}

func checkEnvironment(path, env string, reach *spec.Reach) int {
	svc, err := starter.ResolveSpec(path, env)
	if err != nil {
		fmt.Printf("%s: environment %s: %v\n", path, env, err)
		return 1
	}
	bad := 0
	for _, p := range reach.Check(svc) {
		fmt.Printf("%s: environment %s: %v\n", path, env, p)
		bad++
	}
	return bad
}

// validateRelease checks a release file (its services' specs are loaded
// with it) and, each service in each of its environments, against the policy.
func validateRelease(path string, reach *spec.Reach) (int, error) {
	r, err := release.Load(path)
	if err != nil {
		return problemsOf(err), nil
	}
	bad := 0
	var envs []string
	for _, e := range r.Environments {
		envs = append(envs, e.Name)
	}
	for _, env := range envs {
		specs, err := r.ResolveSpecs(env)
		if err != nil {
			fmt.Printf("%s: environment %s: %v\n", path, env, err)
			bad++
			continue
		}
		for _, name := range r.ServiceNames() {
			for _, p := range reach.Check(specs[name]) {
				fmt.Printf("%s: service %s, environment %s: %v\n", path, name, env, p)
				bad++
			}
		}
	}
	if bad == 0 {
		var order []string
		for _, l := range r.Levels() {
			order = append(order, strings.Join(l, ", "))
		}
		fmt.Printf("%s: ok (release %s: %s; environments: %v)\n", path, r.Name, strings.Join(order, " → "), envs)
	}
	return bad, nil
}
