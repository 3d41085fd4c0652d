// Package policy decides on commands.
//
// Rules are CEL conditions over agent, context, claimed, target and command,
// compiled once at start (a bad expression is refused with its position).
// The first rule whose condition holds decides; a command no rule matches is
// denied. A request made of several commands gets one verdict: any deny
// denies all of it, otherwise any review holds all of it.
//
// An error while evaluating a condition (say, a label the target does not
// have) can only make the verdict stricter: a deny or review rule whose
// condition fails to evaluate applies, an allow rule does not.
//
// `context` holds only attested context (from the token issuer or a verified
// federation claim); what the client merely says about itself is in
// `claimed`, so that an allow rule written over `context` cannot be widened
// by a client.
package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
)

// Action is a verdict.
type Action string

const (
	Allow  Action = "allow"
	Deny   Action = "deny"
	Review Action = "review"
)

// DefaultRule names the implicit last rule.
const DefaultRule = "default-deny"

// Decision is the verdict on a request.
type Decision struct {
	Action Action
	// Rule is the name of the rule that decided, or DefaultRule.
	Rule string
	// Message is the rule's message for the agent (may be empty).
	Message string
	// Command is the index of the command that decided a deny or review
	// (the first one that did), -1 for an allow.
	Command int
	// EvalError is set when a condition could not be evaluated and the
	// verdict was made stricter because of it.
	EvalError string
}

// Agent is what rules see as `agent`.
type Agent struct {
	Name string `cel:"name"`
}

// Target is what rules see as `target`.
type Target struct {
	Name   string            `cel:"name"`
	Kind   string            `cel:"kind"`
	Labels map[string]string `cel:"labels"`
}

// Command is what rules see as `command`.
type Command struct {
	Protocol    string   `cel:"protocol"`
	Verb        string   `cel:"verb"`
	Kind        string   `cel:"kind"`
	Text        string   `cel:"text"`
	Fingerprint string   `cel:"fingerprint"`
	Reads       []string `cel:"reads"`
	Written     []string `cel:"written"`
	Writes      bool     `cel:"writes"`
	Functions   []string `cel:"functions"`
	Risks       []string `cel:"risks"`
	// HTTP adapters: see command.Command.
	Method    string            `cel:"method"`
	Resource  string            `cel:"resource"`
	Operation string            `cel:"operation"`
	Attrs     map[string]string `cel:"attrs"`
}

// Input is everything a rule can see, except the command.
type Input struct {
	Agent   Agent
	Target  Target
	Context map[string]string
	Claimed map[string]string
}

type rule struct {
	name    string
	action  Action
	message string
	prg     cel.Program
}

// Engine evaluates a compiled rule list. It is safe for concurrent use.
type Engine struct {
	rules []rule
}

// CompileError locates a bad rule.
type CompileError struct {
	File string
	Rule string
	Line int
	Msg  string
}

func (e *CompileError) Error() string {
	if e.File != "" && e.Line > 0 {
		return fmt.Sprintf("%s:%d: policy rule %q: %s", e.File, e.Line, e.Rule, e.Msg)
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: policy rule %q: %s", e.Line, e.Rule, e.Msg)
	}
	return fmt.Sprintf("policy rule %q: %s", e.Rule, e.Msg)
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeOf(Agent{}), reflect.TypeOf(Target{}), reflect.TypeOf(Command{}), ext.ParseStructTags(true)),
		ext.Strings(),
		cel.Variable("agent", cel.ObjectType("policy.Agent")),
		cel.Variable("target", cel.ObjectType("policy.Target")),
		cel.Variable("command", cel.ObjectType("policy.Command")),
		cel.Variable("context", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("claimed", cel.MapType(cel.StringType, cel.StringType)),
	)
}

// Compile builds an engine from config rules.
func Compile(rules []config.Rule) (*Engine, error) { return CompileFile("", rules) }

// CompileFile is Compile with the config file named in errors.
func CompileFile(file string, rules []config.Rule) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy environment: %w", err)
	}
	e := &Engine{}
	var errs []error
	for _, r := range rules {
		ast, iss := env.Compile(r.When)
		if iss.Err() != nil {
			errs = append(errs, &CompileError{File: file, Rule: r.Name, Line: r.Line, Msg: strings.ReplaceAll(iss.Err().Error(), "\n", "\n    ")})
			continue
		}
		if ast.OutputType() != cel.BoolType {
			errs = append(errs, &CompileError{File: file, Rule: r.Name, Line: r.Line, Msg: fmt.Sprintf("condition must be true/false, but it is %s", ast.OutputType())})
			continue
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			errs = append(errs, &CompileError{File: file, Rule: r.Name, Line: r.Line, Msg: err.Error()})
			continue
		}
		e.rules = append(e.rules, rule{name: r.Name, action: Action(r.Action), message: r.Message, prg: prg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

// CommandInput converts a command for evaluation.
func CommandInput(c *command.Command) Command {
	risks := make([]string, len(c.Risks))
	for i, r := range c.Risks {
		risks[i] = string(r)
	}
	return Command{
		Protocol:    c.Protocol,
		Verb:        c.Verb,
		Kind:        string(c.Kind),
		Text:        c.Text,
		Fingerprint: c.Fingerprint,
		Reads:       nonNil(c.Reads),
		Written:     nonNil(c.Writes),
		Writes:      c.Changes(),
		Functions:   nonNil(c.Functions),
		Risks:       risks,
		Method:      c.Method,
		Resource:    c.Resource,
		Operation:   c.Operation,
		Attrs:       attrsOrEmpty(c.Attrs),
	}
}

// noAttrs is shared by every command without attributes (SQL): rules only read it.
var noAttrs = map[string]string{}

func attrsOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return noAttrs
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type activation struct {
	in  *Input
	cmd *Command
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "agent":
		return a.in.Agent, true
	case "target":
		return a.in.Target, true
	case "command":
		return *a.cmd, true
	case "context":
		return orEmpty(a.in.Context), true
	case "claimed":
		return orEmpty(a.in.Claimed), true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// DecideOne evaluates the rules for one command.
func (e *Engine) DecideOne(in *Input, cmd *command.Command) Decision {
	ci := CommandInput(cmd)
	act := &activation{in: in, cmd: &ci}
	for _, r := range e.rules {
		out, _, err := r.prg.Eval(act)
		if err != nil {
			if r.action == Allow {
				continue
			}
			return Decision{Action: r.action, Rule: r.name, Message: r.message, EvalError: err.Error()}
		}
		if out == types.True {
			return Decision{Action: r.action, Rule: r.name, Message: r.message}
		}
	}
	return Decision{Action: Deny, Rule: DefaultRule, Message: "no policy rule allows this command"}
}

// Decide evaluates every command and returns the request's one verdict.
func (e *Engine) Decide(in *Input, cmds []command.Command) Decision {
	verdict := Decision{Action: Allow, Command: -1}
	for i := range cmds {
		d := e.DecideOne(in, &cmds[i])
		d.Command = i
		switch d.Action {
		case Deny:
			return d
		case Review:
			if verdict.Action == Allow {
				verdict = d
			}
		case Allow:
			if verdict.Action == Allow && verdict.Rule == "" {
				verdict.Rule = d.Rule
			}
		}
	}
	return verdict
}
