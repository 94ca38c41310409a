// Package app is the composition root: it reads the configuration, picks a
// backend for every store by URL, builds the services and runs the roles a
// process was asked for. Nothing else in Yolda knows which engines are in
// use.
package app

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Env is the process environment the app sees; tests supply their own.
type Env struct {
	Getenv func(string) string
	// Stdin is read by commands that take a secret on standard input;
	// nil is the process's.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ErrUsage marks a command line that could not be understood; main exits 2.
var ErrUsage = errors.New("usage")

const usage = `yolda: roadside assistance dispatch

Usage:
  yolda serve [flags]           run the platform (every role, or --roles)
  yolda migrate [flags]         bring the database schema up to date
  yolda users COMMAND [flags]   manage accounts: add, list, set-role, disable,
                                enable, reset-password, revoke-tokens
  yolda providers add|list      the companies drivers work for
  yolda bench intake [flags]    load-test POST /v1/requests on a running server
  yolda bench pipeline [flags]  find the highest intake rate every consumer keeps up with
  yolda bench warehouse [flags] time warehouse loads and reports on synthetic data
  yolda warehouse rebuild       replay events into an empty warehouse, or re-derive its facts
  yolda mock-insurer [flags]    serve a fake insurer API for demos and tests
  yolda sim [flags]             simulate drivers and customers against a running Yolda
  yolda demo [flags]            everything in one process, with simulated traffic to watch
  yolda version                 print the version

Run "yolda COMMAND --help" for a command's flags. Every flag can also be set
through its environment variable (YOLDA_HTTP_ADDR for --http-addr, ...).
`

// Run executes one command line and returns when it is done or ctx ends.
// A command asked for --help prints it on Stdout and returns nil.
func Run(ctx context.Context, args []string, env Env) error {
	err := run(ctx, args, env)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return ErrUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, env)
	case "migrate":
		return migrateCmd(ctx, rest, env)
	case "users":
		return usersCmd(ctx, rest, env)
	case "providers":
		return providersCmd(ctx, rest, env)
	case "bench":
		switch {
		case len(rest) > 0 && rest[0] == "intake":
			return benchIntake(ctx, rest[1:], env)
		case len(rest) > 0 && rest[0] == "pipeline":
			return benchPipeline(ctx, rest[1:], env)
		case len(rest) > 0 && rest[0] == "warehouse":
			return benchWarehouse(ctx, rest[1:], env)
		}
		fmt.Fprintln(env.Stderr, "usage: yolda bench intake|pipeline|warehouse [flags]")
		return ErrUsage
	case "mock-insurer":
		return mockInsurer(ctx, rest, env)
	case "sim":
		return simCmd(ctx, rest, env)
	case "demo":
		return demoCmd(ctx, rest, env)
	case "warehouse":
		return warehouseCmd(ctx, rest, env)
	case "version", "--version", "-version":
		printVersion(env.Stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprintf(env.Stderr, "yolda: unknown command %q\n\n%s", cmd, usage)
	return ErrUsage
}

// newFlagSet is a command's flag set. about, printed above the flags by
// --help, says what the command does.
func newFlagSet(name, about string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet("yolda "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: yolda %s [flags]\n\n%s\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses fs. --help prints the usage on Stdout and returns
// flag.ErrHelp (Run then returns nil); a bad flag prints it on Stderr and
// returns ErrUsage.
func parse(fs *flag.FlagSet, args []string, env Env) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(env.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.WriteTo(env.Stdout)
		return flag.ErrHelp
	case err != nil:
		_, _ = out.WriteTo(env.Stderr)
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	return nil
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
