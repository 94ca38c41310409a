// Command yolda runs the Yolda roadside-assistance platform. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/yolda/yolda/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], app.Env{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	switch {
	case err == nil:
	case errors.Is(err, app.ErrUsage):
		if err.Error() != app.ErrUsage.Error() {
			fmt.Fprintln(os.Stderr, "yolda:", err)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "yolda:", err)
		os.Exit(1)
	}
}
