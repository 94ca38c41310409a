package app

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
)

// `yolda users ...` manages accounts straight in the operational
// database, beside a running server or without one. The command line acts
// as an admin named after the OS user ("cli:alice" in the audit trail);
// whoever can run it can read the database anyway.

const usersUsage = `Usage: yolda users COMMAND [flags]

Commands:
  add             create an account
  list            list accounts
  set-role        change an account's role (revokes its tokens)
  disable         disable an account (revokes its tokens)
  enable          enable a disabled account
  reset-password  set a new password (revokes the account's tokens)
  revoke-tokens   make every token issued to an account so far invalid

Run "yolda users COMMAND --help" for a command's flags.
`

type usersCommand struct {
	synopsis, about string
	flags           func(fs *flag.FlagSet) func(ctx context.Context, c *usersCtx) error
}

var usersCommands = map[string]usersCommand{
	"add": {"--role ROLE --username U (--password P | --password-stdin) [--name N] [--phone P] [--vehicle-plate X --capabilities tow,... --vehicle-kind K --provider CODE]",
		"Creates an account.", usersAddFlags},
	"list":           {"[--role ROLE] [--disabled true|false] [--limit N]", "Lists accounts, newest first.", usersListFlags},
	"set-role":       {"--user ID|USERNAME --role ROLE", "Changes an account's role; its tokens stop working.", usersSetRoleFlags},
	"disable":        {"--user ID|USERNAME [--reason TEXT]", "Disables an account: it cannot log in, and its tokens stop working.", usersDisableFlags(true)},
	"enable":         {"--user ID|USERNAME [--reason TEXT]", "Enables a disabled account (its old tokens stay revoked).", usersDisableFlags(false)},
	"reset-password": {"--user ID|USERNAME (--password P | --password-stdin)", "Sets a new password; the account's tokens stop working.", usersResetPasswordFlags},
	"revoke-tokens":  {"--user ID|USERNAME", "Makes every token issued to the account so far invalid.", usersRevokeFlags},
}

// usersCtx is what a users command runs with.
type usersCtx struct {
	svc   *account.Service
	who   identity.Principal
	env   Env
	where string // the database written to, for the confirmation line
}

func usersCmd(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 0 {
			fmt.Fprint(env.Stderr, usersUsage)
			return ErrUsage
		}
		fmt.Fprint(env.Stdout, usersUsage)
		return nil
	}
	name := args[0]
	cmd, ok := usersCommands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "yolda users: unknown command %q\n\n%s", name, usersUsage)
		return ErrUsage
	}
	fs := newFlagSet("users "+name, cmd.about+"\n\n  yolda users "+name+" "+cmd.synopsis+"\n", env)
	run := cmd.flags(fs)
	cfg, err := loadConfig(fs, args[1:], env, storeFlags)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.close()
	if store.created {
		fmt.Fprintf(env.Stderr, "yolda: note: there was no database at %s; created a new one (set --data-dir or YOLDA_DATA_DIR to use another)\n", store.where)
	}
	svc, _, err := accountServices(cfg, store, nil, newLogger("warn", "text", env.Stderr))
	if err != nil {
		return err
	}
	return run(ctx, &usersCtx{svc: svc, who: cliPrincipal(), env: env, where: store.where})
}

// cliPrincipal is who the command line acts as.
func cliPrincipal() identity.Principal {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return identity.Principal{UserID: "cli:" + name, Username: name, Role: identity.Admin}
}

// password reads --password or, with --password-stdin, the first line of
// standard input (so that it stays out of the process list and history).
func password(flagValue string, fromStdin bool, env Env) (string, error) {
	switch {
	case fromStdin && flagValue != "":
		return "", fmt.Errorf("%w: give --password or --password-stdin, not both", ErrUsage)
	case fromStdin:
		in := env.Stdin
		if in == nil {
			in = os.Stdin
		}
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	return flagValue, nil
}

func usersAddFlags(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	var n account.NewUser
	var role, caps string
	var stdin bool
	fs.StringVar(&role, "role", "", "customer, driver, operator or admin")
	fs.StringVar(&n.Username, "username", "", "login name")
	fs.StringVar(&n.Password, "password", "", "password, 8 characters or more")
	fs.BoolVar(&stdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.StringVar(&n.Name, "name", "", "full name")
	fs.StringVar(&n.Phone, "phone", "", "phone number")
	fs.StringVar(&n.VehiclePlate, "vehicle-plate", "", "drivers: the service vehicle's plate")
	fs.StringVar(&caps, "capabilities", "", "drivers: comma-separated services, e.g. tow,jump_start")
	fs.StringVar(&n.VehicleKind, "vehicle-kind", "", "drivers: tow_truck or service_van (default: tow_truck if they tow)")
	fs.StringVar(&n.Provider, "provider", "", "drivers: code of the provider they work for (yolda providers add)")
	return func(ctx context.Context, c *usersCtx) error {
		pw, err := password(n.Password, stdin, c.env)
		if err != nil {
			return err
		}
		n.Password, n.Role = pw, identity.Role(role)
		if caps != "" {
			n.Capabilities = strings.Split(caps, ",")
		}
		u, err := c.svc.CreateUser(ctx, c.who, n)
		if errors.Is(err, account.ErrUsernameTaken) {
			return fmt.Errorf("username %q is taken", n.Username)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.env.Stdout, "created %s %s (id %s) in %s\n", u.Role, u.Username, u.ID, c.where)
		return nil
	}
}

func usersListFlags(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	var role, disabled string
	var limit int
	fs.StringVar(&role, "role", "", "only this role: customer, driver, operator or admin")
	fs.StringVar(&disabled, "disabled", "", "true: only disabled accounts; false: only enabled ones")
	fs.IntVar(&limit, "limit", 100, "at most this many accounts, newest first (1-500)")
	return func(ctx context.Context, c *usersCtx) error {
		f := account.UserFilter{Role: identity.Role(role), Limit: limit}
		if f.Role != "" && !f.Role.Valid() {
			return fmt.Errorf("%w: --role %q: want customer, driver, operator or admin", ErrUsage, role)
		}
		switch disabled {
		case "":
		case "true", "false":
			d := disabled == "true"
			f.Disabled = &d
		default:
			return fmt.Errorf("%w: --disabled %q: want true or false", ErrUsage, disabled)
		}
		if limit < 1 || limit > account.MaxLimit {
			return fmt.Errorf("%w: --limit must be 1-%d", ErrUsage, account.MaxLimit)
		}
		page, err := c.svc.ListUsers(ctx, c.who, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tSTATUS\tCREATED")
		for _, u := range page.Items {
			status := "enabled"
			if u.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.ID, u.Username, u.Role, status, u.CreatedAt.Format(time.RFC3339))
		}
		if page.NextCursor != "" {
			fmt.Fprintf(tw, "(more: raise --limit)\n")
		}
		return tw.Flush()
	}
}

// userFlag declares --user and returns the function that finds it.
func userFlag(fs *flag.FlagSet) func(ctx context.Context, c *usersCtx) (account.User, error) {
	var who string
	fs.StringVar(&who, "user", "", "the account: its id (usr_...) or its username")
	return func(ctx context.Context, c *usersCtx) (account.User, error) {
		if who == "" {
			return account.User{}, fmt.Errorf("%w: --user is required", ErrUsage)
		}
		u, err := c.svc.Lookup(ctx, c.who, who)
		if errors.Is(err, account.ErrNotFound) {
			return account.User{}, fmt.Errorf("no account %q in %s", who, c.where)
		}
		return u, err
	}
}

func changed(c *usersCtx, what string, u account.User) error {
	fmt.Fprintf(c.env.Stdout, "%s %s (id %s, role %s, token version %d) in %s\n", what, u.Username, u.ID, u.Role, u.TokenVersion, c.where)
	return nil
}

func usersSetRoleFlags(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	find := userFlag(fs)
	var role string
	fs.StringVar(&role, "role", "", "customer, driver, operator or admin")
	return func(ctx context.Context, c *usersCtx) error {
		u, err := find(ctx, c)
		if err != nil {
			return err
		}
		if u, err = c.svc.SetRole(ctx, c.who, u.ID, identity.Role(role)); err != nil {
			return err
		}
		return changed(c, "role set:", u)
	}
}

func usersDisableFlags(disable bool) func(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	return func(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
		find := userFlag(fs)
		var reason string
		fs.StringVar(&reason, "reason", "", "why, for the audit trail")
		return func(ctx context.Context, c *usersCtx) error {
			u, err := find(ctx, c)
			if err != nil {
				return err
			}
			if u, err = c.svc.SetDisabled(ctx, c.who, u.ID, disable, reason); err != nil {
				return err
			}
			return changed(c, map[bool]string{true: "disabled", false: "enabled"}[disable], u)
		}
	}
}

func usersResetPasswordFlags(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	find := userFlag(fs)
	var pw string
	var stdin bool
	fs.StringVar(&pw, "password", "", "the new password, 8 characters or more")
	fs.BoolVar(&stdin, "password-stdin", false, "read the new password from the first line of standard input")
	return func(ctx context.Context, c *usersCtx) error {
		p, err := password(pw, stdin, c.env)
		if err != nil {
			return err
		}
		u, err := find(ctx, c)
		if err != nil {
			return err
		}
		if u, err = c.svc.ResetPassword(ctx, c.who, u.ID, p); err != nil {
			return err
		}
		return changed(c, "password reset:", u)
	}
}

func usersRevokeFlags(fs *flag.FlagSet) func(context.Context, *usersCtx) error {
	find := userFlag(fs)
	return func(ctx context.Context, c *usersCtx) error {
		u, err := find(ctx, c)
		if err != nil {
			return err
		}
		if u, err = c.svc.RevokeTokens(ctx, c.who, u.ID); err != nil {
			return err
		}
		return changed(c, "tokens revoked:", u)
	}
}
