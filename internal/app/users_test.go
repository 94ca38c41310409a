package app_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The account commands, run as an operator would, on both engines: each
// --help lists only its own flags, and each change shows in the next list.
func TestUsersCommands(t *testing.T) {
	for name, newEnv := range engines(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			for cmd, own := range map[string][]string{
				"add":            {"-role", "-username", "-password", "-password-stdin", "-vehicle-plate", "-capabilities"},
				"list":           {"-role", "-disabled", "-limit"},
				"set-role":       {"-user", "-role"},
				"disable":        {"-user", "-reason"},
				"enable":         {"-user", "-reason"},
				"reset-password": {"-user", "-password", "-password-stdin"},
				"revoke-tokens":  {"-user"},
			} {
				out, _ := e.run(t, "users", cmd, "--help")
				for _, flag := range append(own, "-data-dir", "-database-url") {
					if !strings.Contains(out, flag) {
						t.Errorf("users %s --help lacks %s:\n%s", cmd, flag, out)
					}
				}
				for _, server := range []string{"-http-addr", "-nats-url", "-roles", "-token-ttl"} {
					if strings.Contains(out, server) {
						t.Errorf("users %s --help lists the server flag %s", cmd, server)
					}
				}
			}
			run := func(args ...string) string {
				t.Helper()
				out, err := e.run(t, append([]string{"users"}, args...)...)
				if err != nil {
					t.Fatalf("users %v: %v\n%s", args, err, out)
				}
				return out
			}
			if out := run("add", "--role", "customer", "--username", "ayse", "--password", "ayse-password"); !strings.Contains(out, "created customer ayse") {
				t.Errorf("add: %s", out)
			}
			run("add", "--role", "operator", "--username", "ops", "--password", "ops-password")
			if out := run("set-role", "--user", "ayse", "--role", "operator"); !strings.Contains(out, "role operator") || !strings.Contains(out, "token version 1") {
				t.Errorf("set-role: %s", out)
			}
			run("disable", "--user", "ops", "--reason", "left")
			out := run("list", "--role", "operator")
			if !strings.Contains(out, "ayse") || !strings.Contains(out, "ops") || !strings.Contains(out, "disabled") {
				t.Errorf("list after the changes:\n%s", out)
			}
			if out := run("list", "--disabled", "false"); strings.Contains(out, "ops ") {
				t.Errorf("list --disabled false shows the disabled account:\n%s", out)
			}
			cmd := exec.Command(binary, "users", "reset-password", "--user", "ayse", "--password-stdin")
			cmd.Env = e.env()
			cmd.Stdin = strings.NewReader("a-new-password\n")
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "token version 2") {
				t.Errorf("reset-password from stdin: %v %s", err, out)
			}
			if out := run("revoke-tokens", "--user", "ayse"); !strings.Contains(out, "token version 3") {
				t.Errorf("revoke-tokens: %s", out)
			}
			for _, bad := range [][]string{
				{"set-role", "--user", "nobody", "--role", "admin"},
				{"set-role", "--user", "ayse", "--role", "pilot"},
				{"disable"},
				{"reset-password", "--user", "ayse", "--password", "short"},
				{"list", "--disabled", "maybe"},
				{"frobnicate"},
			} {
				if out, err := e.run(t, append([]string{"users"}, bad...)...); err == nil {
					t.Errorf("users %v succeeded: %s", bad, out)
				}
			}
		})
	}
}
