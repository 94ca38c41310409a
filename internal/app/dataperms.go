package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// warnIfDataDirOpen logs a warning when other users of the machine can
// read the data directory or the files in it: the database holds password
// hashes, phones and addresses, and the JWT secret mints tokens. Yolda
// creates them 0600 in a 0700 directory, but an older install, a copy or
// a hand-made directory may be wider; fixing it is the operator's call
// (a backup tool may read it on purpose), so this only says so.
func warnIfDataDirOpen(dir string, log *slog.Logger) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("cannot check the data directory's permissions", "dir", dir, "err", err)
		return
	}
	if perm := info.Mode().Perm(); perm&0o007 != 0 {
		log.Warn("the data directory is open to other users of this machine: it holds password hashes and the token secret",
			"dir", dir, "mode", fmt.Sprintf("%04o", perm), "fix", "chmod 700 "+dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			path := filepath.Join(dir, e.Name())
			log.Warn("a data file is readable by other users", "file", path,
				"mode", fmt.Sprintf("%04o", perm), "fix", "chmod 600 "+path)
		}
	}
}
