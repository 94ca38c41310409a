package app

import "errors"

// lockFileName is the lock file in the data directory that `yolda serve`
// holds while it runs.
const lockFileName = "serve.lock"

// errDataDirInUse: another server holds the data directory.
var errDataDirInUse = errors.New("data directory in use")

// usesDataDir reports whether the process keeps state of its own in the
// data directory, which two processes must never share: the SQLite file
// (no database URL) or the embedded JetStream store (a role needs the
// broker and no NATS URL is set). On PostgreSQL with an external broker
// the directory holds only the generated JWT secret, and processes may
// share it.
func (p *process) usesDataDir() bool {
	return p.cfg.DatabaseURL == "" || (needed(p.roles)&needBroker != 0 && p.cfg.NATSURL == "")
}

// lockDataDir is called by assemble before anything is opened.
func (p *process) lockDataDir() error {
	if !p.usesDataDir() {
		return nil
	}
	release, err := lockDataDir(p.cfg.DataDir)
	if err != nil {
		return err
	}
	p.onClose(release)
	return nil
}
