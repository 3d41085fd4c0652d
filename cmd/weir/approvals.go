package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/httpapi"
)

// adminTokenEnv holds the person's admin token for commands that act as a person.
const adminTokenEnv = "WEIR_ADMIN_TOKEN"

// approvalsCmd is `weir approvals list | show ID | approve ID | deny ID`:
// a client of the running gateway's HTTP API (listen.http), acting as the
// person whose admin token is in WEIR_ADMIN_TOKEN.
func approvalsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "approvals", Short: "List and decide just-in-time approval requests (token from WEIR_ADMIN_TOKEN)"}
	var status string
	list := &cobra.Command{
		Use:   "list [--status pending|granted|denied|expired|all]",
		Short: "List approval requests (pending by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var out httpapi.ApprovalList
			if err := c.call(http.MethodGet, "/v1/approvals?status="+url.QueryEscape(status), nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATUS\tMODE\tAGENT\tTARGET\tRULE\tAGE\tSTATEMENT")
			for _, v := range out.Approvals {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Status, v.Mode, v.Agent, v.Target, v.Rule,
					time.Since(v.CreatedAt).Round(time.Second), oneLine(strings.Join(v.Statements, "; "), 60))
			}
			if len(out.Approvals) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no "+strings.TrimSuffix(status, "all")+" approval requests")
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&status, "status", "pending", "pending, granted, denied, expired or all")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one request: agent, context, exact statements, preview",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseApprovalID(args[0])
			if err != nil {
				return err
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var v approval.View
			if err := c.call(http.MethodGet, fmt.Sprintf("/v1/approvals/%d", id), nil, &v); err != nil {
				return err
			}
			printApproval(cmd.OutOrStdout(), v)
			return nil
		},
	}

	var reason string
	decide := func(verb string) *cobra.Command {
		use := verb + " ID [--reason TEXT]"
		short := "Approve a request (the held or replayed statement runs once)"
		if verb == "deny" {
			use = verb + " ID --reason TEXT"
			short = "Deny a request; the reason is shown to the agent"
		}
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := parseApprovalID(args[0])
				if err != nil {
					return err
				}
				if verb == "deny" && strings.TrimSpace(reason) == "" {
					return errors.New("deny needs --reason TEXT (the agent is shown it)")
				}
				c, err := newAPIClient(cmd)
				if err != nil {
					return err
				}
				var v approval.View
				if err := c.call(http.MethodPost, fmt.Sprintf("/v1/approvals/%d/%s", id, verb), httpapi.DecisionRequest{Reason: reason}, &v); err != nil {
					return err
				}
				if v.Status == approval.StatusGranted {
					fmt.Fprintf(cmd.OutOrStdout(), "approved %d (%s on %s); the grant is valid until %s\n", v.ID, v.Agent, v.Target, v.GrantExpiresAt.Format(time.RFC3339))
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "denied %d (%s on %s): %s\n", v.ID, v.Agent, v.Target, v.Reason)
				}
				return nil
			},
		}
	}
	approve, deny := decide("approve"), decide("deny")
	approve.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	deny.Flags().StringVar(&reason, "reason", "", "why (required; shown to the agent and audited)")
	cmd.AddCommand(list, show, approve, deny)
	return cmd
}

func parseApprovalID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%q is not an approval id (a number, as in `weir approvals list`)", s)
	}
	return id, nil
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func printApproval(w io.Writer, v approval.View) {
	fmt.Fprintf(w, "request   %d\nstatus    %s\nmode      %s\nagent     %s\ntarget    %s\nrule      %s\n", v.ID, v.Status, v.Mode, v.Agent, v.Target, v.Rule)
	if len(v.Context) > 0 {
		fmt.Fprintf(w, "context   %s\n", formatContext(v.Context))
	}
	if v.SessionID != "" {
		fmt.Fprintf(w, "session   %s\n", v.SessionID)
	}
	fmt.Fprintf(w, "requested %s\n", v.CreatedAt.Format(time.RFC3339))
	if v.Status == approval.StatusPending {
		fmt.Fprintf(w, "deadline  %s\n", v.ExpiresAt.Format(time.RFC3339))
	}
	if !v.DecidedAt.IsZero() {
		fmt.Fprintf(w, "decided   %s by %s", v.DecidedAt.Format(time.RFC3339), v.DecidedBy)
		if v.Reason != "" {
			fmt.Fprintf(w, ": %s", v.Reason)
		}
		fmt.Fprintln(w)
	}
	if !v.GrantExpiresAt.IsZero() {
		fmt.Fprintf(w, "grant     valid until %s", v.GrantExpiresAt.Format(time.RFC3339))
		if !v.UsedAt.IsZero() {
			fmt.Fprintf(w, ", used %s", v.UsedAt.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if v.Preview != "" {
		fmt.Fprintf(w, "preview   %s\n", v.Preview)
	}
	fmt.Fprintln(w, "statements:")
	for _, s := range v.Statements {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if v.Status == approval.StatusPending {
		fmt.Fprintf(w, "decide:   %s\n          %s\n", v.ApproveCommand, v.DenyCommand)
	}
}

// apiClient calls the running gateway's HTTP API as a person.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

func newAPIClient(cmd *cobra.Command) (*apiClient, error) {
	tok := strings.TrimSpace(os.Getenv(adminTokenEnv))
	if tok == "" {
		return nil, errors.New(adminTokenEnv + " is not set: export your admin token (from `weir admin token issue --name NAME --role approver`)")
	}
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	base, tlsCfg, err := apiEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the token goes to weir only
	tr.TLSClientConfig = tlsCfg
	return &apiClient{base: base, token: tok, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// apiEndpoint derives the API's URL from listen.http, and whom to trust:
// https unless plaintext on loopback is allowed (as `weir serve` decides);
// weir's generated certificate in data_dir/tls/server.crt when no
// cert_file is configured, else the system roots plus cert_file.
func apiEndpoint(cfg *config.Config) (string, *tls.Config, error) {
	base, err := httpBaseURL(cfg)
	if err != nil {
		return "", nil, err
	}
	if plainHTTP(cfg) {
		return base, nil, nil
	}
	var pool *x509.CertPool
	certFile := cfg.TLS.CertFile
	if certFile == "" {
		certFile = filepath.Join(cfg.DataDir, "tls", "server.crt")
		pool = x509.NewCertPool()
	} else if pool, err = x509.SystemCertPool(); err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return "", nil, fmt.Errorf("reading weir's TLS certificate (is `weir serve` running with this config?): %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return "", nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	return base, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach weir at %s: %v", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("reading weir's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("weir answered HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("weir's answer is not the expected JSON: %w", err)
	}
	return nil
}
