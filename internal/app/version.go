package app

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// build is what the Go toolchain stamped into the binary: the module
// version (a tag, or a pseudo-version from the commit, when built from a
// clone; "(devel)" otherwise) and the VCS revision, commit time and
// whether the tree had uncommitted changes. `go run` and `go test` stamp
// no VCS information; `go build` (`make build`) does.
type build struct {
	module, revision, time, goVersion string
	modified                          bool
}

func readBuild() build {
	b := build{module: "(devel)", goVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.module = info.Main.Version
	}
	b.goVersion = info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.revision = s.Value
		case "vcs.time":
			b.time = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// Version is one word for logs and /healthz: the module version, or
// devel-REVISION[-dirty] for an untagged build, or devel when nothing was
// stamped.
func Version() string { return readBuild().version() }

func (b build) version() string {
	if b.module != "(devel)" {
		return b.module
	}
	if b.revision == "" {
		return "devel"
	}
	v := "devel-" + b.revision[:min(12, len(b.revision))]
	if b.modified {
		v += "-dirty"
	}
	return v
}

// printVersion is `yolda version`: the version, then where it came from.
func printVersion(w io.Writer) {
	b := readBuild()
	fmt.Fprintln(w, "yolda", b.version())
	if b.revision != "" {
		fmt.Fprintf(w, "  revision %s\n  committed %s\n  modified %t\n", b.revision, b.time, b.modified)
	} else {
		fmt.Fprintln(w, "  no VCS information (built by go run or go test, or outside a clone; make build stamps it)")
	}
	fmt.Fprintf(w, "  built with %s %s/%s\n", b.goVersion, runtime.GOOS, runtime.GOARCH)
}
