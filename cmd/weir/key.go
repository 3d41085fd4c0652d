package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func keyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Rotate the Ed25519 keys that sign tokens and audit checkpoints"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys (the newest signs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			keys, err := env.auth.Keys(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KEY ID\tCREATED\tSTATE")
			for _, k := range keys {
				state := "verifies"
				if k.Active {
					state = "signs and verifies"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", k.ID, k.CreatedAt.UTC().Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new signing key; older keys keep verifying until retired (no downtime)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			id, err := env.auth.Rotate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s; a running weir picks it up within seconds. Retire the old key once its tokens have expired.\n", id)
			return nil
		},
	}
	retire := &cobra.Command{
		Use:   "retire KEY_ID",
		Short: "Remove an old key: tokens it signed stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.close()
			if err := env.auth.Retire(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "retired key %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, rotate, retire)
	return cmd
}
