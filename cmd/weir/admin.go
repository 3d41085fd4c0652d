package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/identity"
)

// typeAdminTokenIssued is the audit event of `weir admin token issue`.
const typeAdminTokenIssued = "admin_token.issued"

// adminCmd is `weir admin …`: tokens for people (approvers, admins,
// auditors). Admin tokens are listed and revoked with `weir token list`
// (agent "admin:NAME") and `weir token revoke ID`.
func adminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Manage people's admin identities"}
	tokenCmd := &cobra.Command{Use: "token", Short: "Issue admin tokens for people"}
	var (
		name string
		role string
		ttl  time.Duration
	)
	issue := &cobra.Command{
		Use:   "issue --name NAME --role approver|admin|auditor [--ttl 8h]",
		Short: "Issue a person's admin token (printed alone on stdout; use it as WEIR_ADMIN_TOKEN)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := identity.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if ttl < time.Second || ttl > identity.MaxAdminTTL {
				return fmt.Errorf("--ttl must be between 1s and %s, got %s", identity.MaxAdminTTL, ttl)
			}
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			ctx, st, auth := cmd.Context(), env.st, env.auth
			issuer := localAdmin()
			tok, claims, err := auth.IssueAdminBy(ctx, name, r, ttl, issuer)
			if err != nil {
				return err
			}
			if err := audit.AppendOne(ctx, st, audit.Event{Type: typeAdminTokenIssued, Agent: identity.AdminAgentPrefix + name, Data: map[string]any{
				"token_id": claims.ID, "name": name, "role": string(r), "issued_by": issuer, "expires": claims.Expiry().UTC(),
			}}); err != nil {
				// Not handed out unaudited.
				if rerr := auth.Revoke(ctx, claims.ID, issuer); rerr != nil {
					return fmt.Errorf("%w (and revoking the unaudited token %s failed: %v)", err, claims.ID, rerr)
				}
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "issued %s for %s (role %s), expires %s\n", claims.ID, name, r, claims.Expiry().UTC().Format(time.RFC3339))
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	issue.Flags().StringVar(&name, "name", "", "the person's name (required)")
	issue.Flags().StringVar(&role, "role", "", "approver, admin or auditor (required)")
	issue.Flags().DurationVar(&ttl, "ttl", identity.DefaultAdminTTL, "lifetime (at most 168h)")
	issue.MarkFlagRequired("name")
	issue.MarkFlagRequired("role")
	tokenCmd.AddCommand(issue)
	cmd.AddCommand(tokenCmd)
	return cmd
}
