package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

// startCheckpoints signs the chain's head every interval, and once more
// when stopped; with a retention, it prunes older records every hour.
func startCheckpoints(st store.Store, auth *identity.Authority, interval, retention time.Duration, log *slog.Logger) func() {
	var signer audit.Signer = auth
	stop := make(chan struct{})
	done := make(chan struct{})
	write := func() {
		if err := audit.Checkpoint(context.Background(), st, signer, time.Now()); err != nil {
			log.Error("audit checkpoint failed", "err", err)
		}
	}
	prune := func() {
		if retention <= 0 {
			return
		}
		rep, err := audit.Prune(context.Background(), st, signer, auth.PublicKeys(), time.Now().Add(-retention))
		if err != nil {
			log.Error("audit retention: pruning refused", "err", err)
			return
		}
		if rep.Removed > 0 {
			log.Info("audit retention: pruned", "records", rep.Removed, "first", rep.First)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		p := time.NewTicker(time.Hour)
		defer p.Stop()
		prune()
		for {
			select {
			case <-stop:
				write()
				return
			case <-t.C:
				write()
			case <-p.C:
				prune()
			}
		}
	}()
	return func() { close(stop); <-done }
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify, export and read the audit log"}
	var file, keyFile string
	verify := &cobra.Command{
		Use:   "verify [--file EXPORT --key weir.pub]",
		Short: "Check the audit hash chain and signed checkpoints; exit 0 iff intact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep audit.Report
			if file != "" {
				if keyFile == "" {
					return errors.New("--file needs --key (the public key from `weir audit pubkey`)")
				}
				keys, err := readPublicKeys(keyFile)
				if err != nil {
					return err
				}
				if rep, err = audit.VerifyFile(file, keys); err != nil {
					return err
				}
			} else {
				env, err := openEnv(cmd)
				if err != nil {
					return err
				}
				defer env.close()
				if rep, err = audit.Verify(cmd.Context(), env.st, env.auth.PublicKeys()); err != nil {
					return err
				}
			}
			if rep.BrokenAt != 0 {
				return fmt.Errorf("audit chain broken at record %d: %s (%d records verified before it)", rep.BrokenAt, rep.Problem, rep.Records)
			}
			msg := fmt.Sprintf("ok: %d records", rep.Records)
			if rep.First > 1 {
				msg += fmt.Sprintf(" (from record %d)", rep.First)
			}
			msg += ", chain intact"
			if rep.Anchored {
				msg += " (earlier records pruned; the start is signed)"
			}
			if rep.Checkpoints > 0 {
				msg += fmt.Sprintf(", %d signed checkpoints, last signed %s ago", rep.Checkpoints, time.Since(rep.LastCheckpoint).Round(time.Second))
				if rep.Unsigned > 0 {
					msg += fmt.Sprintf(" (%d newer records not yet signed)", rep.Unsigned)
				}
			} else {
				msg += ", no signed checkpoint yet"
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "verify an exported log file instead of the store")
	verify.Flags().StringVar(&keyFile, "key", "", "public key file (PEM) for --file")

	pubkey := &cobra.Command{
		Use:   "pubkey",
		Short: "Print weir's public keys (PEM) for offline verification",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			keys := env.auth.PublicKeys()
			ids := make([]string, 0, len(keys))
			for id := range keys {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				der, err := x509.MarshalPKIXPublicKey(keys[id])
				if err != nil {
					return err
				}
				if err := pem.Encode(cmd.OutOrStdout(), &pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Key-Id": id}, Bytes: der}); err != nil {
					return err
				}
			}
			return nil
		},
	}

	var since time.Duration
	var format string
	var follow bool
	export := &cobra.Command{
		Use:   "export [--since 1h] [--format jsonl] [--follow]",
		Short: "Print audit records as JSON lines (the stored form, verifiable offline)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return fmt.Errorf("--format %q: only jsonl is supported", format)
			}
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			return exportRecords(cmd.Context(), env.st, from, follow, w)
		},
	}
	export.Flags().DurationVar(&since, "since", 0, "only records newer than this (e.g. 1h); default all")
	export.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl)")
	export.Flags().BoolVar(&follow, "follow", false, "keep printing new records as they are written")
	var olderThan time.Duration
	prune := &cobra.Command{
		Use:   "prune --older-than 720h",
		Short: "Remove signed records older than a duration; the chain still verifies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan <= 0 {
				return errors.New("--older-than is required (e.g. 720h)")
			}
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			rep, err := audit.Prune(cmd.Context(), env.st, env.auth, env.auth.PublicKeys(), time.Now().Add(-olderThan))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pruned %d records; the chain now starts at record %d\n", rep.Removed, rep.First)
			return nil
		},
	}
	prune.Flags().DurationVar(&olderThan, "older-than", 0, "remove records older than this")
	cmd.AddCommand(verify, pubkey, export, prune)
	return cmd
}

// cliEnv is what a CLI command that works on the local store needs.
type cliEnv struct {
	cfg  *config.Config
	st   store.Store
	auth *identity.Authority
}

func (e *cliEnv) close() { e.st.Close() }

func openEnv(cmd *cobra.Command) (*cliEnv, error) {
	path, _ := cmd.Flags().GetString("config")
	return openEnvPath(path)
}

func openEnvPath(path string) (*cliEnv, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := identity.NewAuthority(context.Background(), st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &cliEnv{cfg: cfg, st: st, auth: auth}, nil
}

func readPublicKeys(path string) (map[string]ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys := map[string]ed25519.PublicKey{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok || b.Headers["Key-Id"] == "" {
			return nil, fmt.Errorf("%s: want Ed25519 PUBLIC KEY blocks with a Key-Id header (from weir audit pubkey)", path)
		}
		keys[b.Headers["Key-Id"]] = ek
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no public key found", path)
	}
	return keys, nil
}

// exportRecords writes records (newer than from) in their stored form.
func exportRecords(ctx context.Context, st store.Store, from time.Time, follow bool, w *bufio.Writer) error {
	var after int64
	for {
		recs, err := st.ReadAudit(ctx, after, 5000)
		if err != nil {
			return err
		}
		for i := range recs {
			r := &recs[i]
			after = r.Seq
			if r.Time.Before(from) {
				continue
			}
			if _, err := w.Write(store.EncodeAuditLine(nil, r)); err != nil {
				return err
			}
		}
		if len(recs) > 0 {
			continue
		}
		if !follow {
			return nil
		}
		if err := w.Flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// auditEvents reads every record, decoded, for sessions and replay.
func auditEvents(ctx context.Context, st store.Store, keep func(*store.AuditRecord) bool) ([]event, error) {
	var out []event
	var after int64
	for {
		recs, err := st.ReadAudit(ctx, after, 5000)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return out, nil
		}
		for i := range recs {
			r := &recs[i]
			after = r.Seq
			if !keep(r) {
				continue
			}
			e := event{Seq: r.Seq, Time: r.Time, Type: r.Type, SessionID: r.SessionID, Agent: r.Agent, Target: r.Target}
			if err := json.Unmarshal(r.Data, &e.Data); err != nil {
				return nil, fmt.Errorf("record %d: %w", r.Seq, err)
			}
			out = append(out, e)
		}
	}
}

type event struct {
	Seq       int64          `json:"seq"`
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"`
	SessionID string         `json:"session_id,omitempty"`
	Agent     string         `json:"agent,omitempty"`
	Target    string         `json:"target,omitempty"`
	Data      map[string]any `json:"data"`
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

func sessionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "List agent sessions from the audit log"}
	var agent string
	var since time.Duration
	list := &cobra.Command{
		Use:   "list [--agent NAME] [--since 24h]",
		Short: "List sessions, newest last",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			evs, err := auditEvents(cmd.Context(), env.st, func(r *store.AuditRecord) bool {
				return (r.Type == audit.TypeSessionStart || r.Type == audit.TypeSessionEnd) && (agent == "" || r.Agent == agent)
			})
			if err != nil {
				return err
			}
			ends := map[string]event{}
			for _, e := range evs {
				if e.Type == audit.TypeSessionEnd {
					ends[e.SessionID] = e
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SESSION\tAGENT\tTARGET\tSTARTED\tDURATION\tSTATEMENTS\tDENIED\tCLIENT\tCONTEXT")
			for _, e := range evs {
				if e.Type != audit.TypeSessionStart || e.Time.Before(from) {
					continue
				}
				dur, stmts, denied := "live", "-", "-"
				if end, ok := ends[e.SessionID]; ok {
					dur = end.Time.Sub(e.Time).Round(time.Millisecond).String()
					stmts, denied = fmt.Sprint(num(end.Data, "statements")), fmt.Sprint(num(end.Data, "denied"))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.SessionID, e.Agent, e.Target, e.Time.Local().Format("2006-01-02 15:04:05"),
					dur, stmts, denied, str(e.Data, "client_addr"), contextSummary(e.Data))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&agent, "agent", "", "only this agent's sessions")
	list.Flags().DurationVar(&since, "since", 0, "only sessions started within this duration (e.g. 24h)")
	cmd.AddCommand(list)
	return cmd
}

func contextSummary(data map[string]any) string {
	ctx, _ := data["context"].(map[string]any)
	var parts []string
	for _, kind := range []string{"attested", "claimed"} {
		m, _ := ctx[kind].(map[string]any)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := fmt.Sprintf("%s=%v", k, m[k])
			if kind == "claimed" {
				p += "(claimed)"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

func formatCounts(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", int64(m[k].(float64)), k)
	}
	return strings.Join(parts, ", ")
}

// printRows shows the rows the agent saw, as psql aligns them.
func printRows(w io.Writer, data map[string]any) {
	rows, _ := data["rows_seen"].([]any)
	if len(rows) == 0 {
		return
	}
	cols, _ := data["columns"].([]any)
	table := make([][]string, 0, len(rows)+1)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i], _ = c.(string)
	}
	for _, r := range rows {
		vals, _ := r.([]any)
		line := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				line[i] = ""
			} else {
				line[i] = fmt.Sprint(v)
			}
		}
		table = append(table, line)
	}
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len(h)
	}
	for _, line := range table {
		for i, v := range line {
			if i < len(width) && len(v) > width[i] {
				width[i] = len(v)
			}
		}
	}
	row := func(vals []string) string {
		parts := make([]string, len(width))
		for i := range width {
			v := ""
			if i < len(vals) {
				v = vals[i]
			}
			parts[i] = fmt.Sprintf(" %-*s ", width[i], v)
		}
		return "      " + strings.TrimRight(strings.Join(parts, "|"), " ")
	}
	if len(header) > 0 {
		fmt.Fprintln(w, row(header))
		dashes := make([]string, len(width))
		for i := range width {
			dashes[i] = strings.Repeat("-", width[i]+2)
		}
		fmt.Fprintln(w, "      "+strings.Join(dashes, "+"))
	}
	for _, line := range table {
		fmt.Fprintln(w, row(line))
	}
	if data["rows_truncated"] == true {
		fmt.Fprintln(w, "      (more rows were returned; the session's recording limit, audit.record_bytes, was reached)")
	}
}

func replayCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay SESSION_ID [--json]",
		Short: "Show a session as a transcript: each command with its decision, rule and result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			id := args[0]
			evs, err := auditEvents(cmd.Context(), env.st, func(r *store.AuditRecord) bool { return r.SessionID == id })
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				return fmt.Errorf("no session %q in the audit log (see weir sessions list)", id)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, e := range evs {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			return transcript(cmd.OutOrStdout(), evs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the session's records as JSON lines")
	return cmd
}

// transcript renders a session like a psql log: prompt, statement, and
// what weir did with it.
func transcript(out io.Writer, evs []event) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	prompt := "=> "
	for _, e := range evs {
		ts := e.Time.Local().Format("15:04:05.000")
		switch e.Type {
		case audit.TypeSessionStart:
			prompt = e.Target + "=> "
			fmt.Fprintf(w, "-- session %s: agent %s on target %s via %s from %s at %s\n", e.SessionID, e.Agent, e.Target,
				str(e.Data, "protocol"), str(e.Data, "client_addr"), e.Time.Local().Format(time.RFC3339))
			fmt.Fprintf(w, "-- token %s issued by %s; context: %s\n\n", str(e.Data, "token_id"), str(e.Data, "issued_by"), contextSummary(e.Data))
		case audit.TypeCommand:
			cmds, _ := e.Data["commands"].([]any)
			var texts []string
			for _, c := range cmds {
				m, _ := c.(map[string]any)
				texts = append(texts, strings.TrimRight(str(m, "text"), ";")+";")
			}
			fmt.Fprintf(w, "[%s] #%d %s%s\n", ts, num(e.Data, "seq"), prompt, strings.Join(texts, " "))
			switch d := str(e.Data, "decision"); d {
			case "allow":
				fmt.Fprintf(w, "    allowed by rule %q (%s)\n", str(e.Data, "rule"), str(e.Data, "via"))
			default:
				fmt.Fprintf(w, "    %s by rule %q: %s\n", strings.ToUpper(d), str(e.Data, "rule"), str(e.Data, "reason"))
			}
		case audit.TypeResult:
			switch {
			case e.Data["skipped"] == true:
				fmt.Fprintf(w, "    #%d not run by the server (an earlier statement in the batch failed)\n", num(e.Data, "seq"))
			case str(e.Data, "error") != "":
				fmt.Fprintf(w, "    #%d server error %s after %.3f ms\n", num(e.Data, "seq"), str(e.Data, "error"), e.Data["duration_ms"])
			default:
				fmt.Fprintf(w, "    #%d ok: %d rows in %.3f ms", num(e.Data, "seq"), num(e.Data, "rows"), e.Data["duration_ms"])
				if m, ok := e.Data["masked"].(map[string]any); ok && len(m) > 0 {
					fmt.Fprintf(w, ", masked %s", formatCounts(m))
				}
				fmt.Fprintln(w)
			}
			printRows(w, e.Data)
		case "session.note":
			if str(e.Data, "event") != "mcp.tool_call" {
				fmt.Fprintf(w, "[%s] (%s) %v\n", ts, e.Type, e.Data)
				break
			}
			// An MCP tool call; its SQL, if any, is in the target's own session.
			fmt.Fprintf(w, "[%s] tool %s", ts, str(e.Data, "tool"))
			for _, k := range []string{"target", "approval_id", "outcome", "rule", "reason"} {
				if v, ok := e.Data[k]; ok && fmt.Sprint(v) != "" {
					fmt.Fprintf(w, " %s=%v", k, v)
				}
			}
			fmt.Fprintln(w)
		case audit.TypeSessionEnd:
			fmt.Fprintf(w, "\n-- session ended at %s: %s; %d statements, %d denied, %d rows, %d ms\n", e.Time.Local().Format(time.RFC3339),
				str(e.Data, "reason"), num(e.Data, "statements"), num(e.Data, "denied"), num(e.Data, "rows"), num(e.Data, "duration_ms"))
		default:
			fmt.Fprintf(w, "[%s] (%s) %v\n", ts, e.Type, e.Data)
		}
	}
	return nil
}
