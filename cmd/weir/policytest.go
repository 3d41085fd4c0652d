package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/pgsql"
	"github.com/weir-gw/weir/internal/policy"
)

// policyCase is one expectation in a policy test file.
type policyCase struct {
	Name    string            `yaml:"name"`
	Agent   string            `yaml:"agent"`
	Target  string            `yaml:"target"`
	Context map[string]string `yaml:"context"`
	Claimed map[string]string `yaml:"claimed"`
	SQL     string            `yaml:"sql"`
	Expect  string            `yaml:"expect"`
	Rule    string            `yaml:"rule"`
	Line    int               `yaml:"-"`
}

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test the policy"}
	test := &cobra.Command{
		Use:   "test POLICY_TEST_FILE",
		Short: "Run policy unit tests: SQL + who + where -> the expected verdict and rule",
		Long: `A policy test file is YAML:

  cases:
    - name: agents read orders
      agent: ci-bot
      target: orders
      context: {ticket: OPS-12}          # attested context (as from the token)
      claimed: {application_name: psql}  # what the client says
      sql: SELECT * FROM orders WHERE id = 1
      expect: allow                      # allow | deny | review
      rule: reads                        # optional: the rule that must decide

Each SQL text is classified with the same parser weir uses; text weir cannot
parse or classify is a deny by rule "weir". Exit 0 iff every case passes.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			eng, err := policy.CompileFile(cfg.Path, cfg.Policy.Rules)
			if err != nil {
				return err
			}
			cases, err := readPolicyCases(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, tc := range cases {
				got, rule, why := decideCase(cfg.Targets, eng, &tc)
				ok := got == tc.Expect && (tc.Rule == "" || tc.Rule == rule)
				status := "PASS"
				if !ok {
					status = "FAIL"
					failed++
				}
				fmt.Fprintf(out, "%s  %s:%d %s: %s by %q", status, args[0], tc.Line, tc.Name, got, rule)
				if !ok {
					fmt.Fprintf(out, " (want %s", tc.Expect)
					if tc.Rule != "" {
						fmt.Fprintf(out, " by %q", tc.Rule)
					}
					fmt.Fprint(out, ")")
					if why != "" {
						fmt.Fprintf(out, "; %s", why)
					}
				}
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", len(cases)-failed, failed)
			if failed > 0 {
				return fmt.Errorf("%d of %d policy cases failed", failed, len(cases))
			}
			return nil
		},
	}
	cmd.AddCommand(test)
	return cmd
}

func readPolicyCases(path string) ([]policyCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Cases []yaml.Node `yaml:"cases"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var cases []policyCase
	for i, n := range doc.Cases {
		var tc policyCase
		if err := n.Decode(&tc); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n.Line, err)
		}
		tc.Line = n.Line
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("case %d", i+1)
		}
		switch tc.Expect {
		case "allow", "deny", "review":
		default:
			return nil, fmt.Errorf("%s:%d: %s: expect must be allow, deny or review, got %q", path, n.Line, tc.Name, tc.Expect)
		}
		if strings.TrimSpace(tc.SQL) == "" {
			return nil, fmt.Errorf("%s:%d: %s: sql is missing", path, n.Line, tc.Name)
		}
		cases = append(cases, tc)
	}
	if len(cases) == 0 {
		return nil, errors.New(path + ": no cases")
	}
	return cases, nil
}

// decideCase classifies and decides one case as the gateway would.
func decideCase(targets []config.Target, eng *policy.Engine, tc *policyCase) (verdict, rule, why string) {
	cmds, err := pgsql.Classify(tc.SQL)
	if err != nil {
		return "deny", "weir", err.Error()
	}
	in := policy.Input{Agent: policy.Agent{Name: tc.Agent}, Context: tc.Context, Claimed: tc.Claimed,
		Target: policy.Target{Name: tc.Target, Kind: "postgres"}}
	for _, t := range targets {
		if t.Name == tc.Target {
			in.Target.Kind, in.Target.Labels = t.Kind, t.Labels
		}
	}
	d := eng.Decide(&in, cmds)
	if d.EvalError != "" {
		why = "condition error: " + d.EvalError
	}
	if d.Command >= 0 && d.Command < len(cmds) {
		why = strings.TrimSpace(why + " " + describe(&cmds[d.Command]))
	}
	return string(d.Action), d.Rule, why
}

func describe(c *command.Command) string {
	return fmt.Sprintf("weir saw %s (kind %s, reads %v, writes %v, functions %v, risks %v)", c.Verb, c.Kind, c.Reads, c.Writes, c.Functions, c.Risks)
}
