package healthboard

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/insurance/resilient"
)

// Board is where a process posts its snapshot, under its own key
// (bus.HealthBoard).
type Board interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// Source is what a snapshot is taken of (resilient.Clients).
type Source interface {
	Health() []resilient.Health
}

// Publisher posts a process's insurer health to the board: at start,
// every interval, and as soon as changed fires (a breaker transition), so
// a breaker that opens is on the board at once, not up to an interval
// later. When it stops cleanly it takes its entry down.
type Publisher struct {
	board   Board
	src     Source
	key     string
	changed <-chan struct{}
	log     *slog.Logger
}

// Changes wakes a Publisher on a breaker transition: its BreakerChanged
// is resilient.Options.BreakerChanged. Transitions that come faster than
// posts are posted as one.
type Changes struct{ c chan struct{} }

// NewChanges returns a Changes nothing has happened to yet.
func NewChanges() *Changes { return &Changes{c: make(chan struct{}, 1)} }

// BreakerChanged notes a transition. It never blocks: the breaker calls
// it with its lock held.
func (c *Changes) BreakerChanged(code, state string) {
	select {
	case c.c <- struct{}{}:
	default:
	}
}

// C receives once after one or more transitions.
func (c *Changes) C() <-chan struct{} { return c.c }

// NewPublisher posts src's health under key; changed may be nil.
func NewPublisher(board Board, src Source, key string, changed <-chan struct{}, log *slog.Logger) *Publisher {
	return &Publisher{board: board, src: src, key: key, changed: changed,
		log: cmp.Or(log, slog.New(slog.DiscardHandler)).With("component", "insurer-health-publisher")}
}

// Run posts until ctx ends, every interval, then removes the entry. A
// post that fails (the broker away) is logged once, when posting starts
// failing, and tried again at the next tick: the entry ages out on the
// board meanwhile, which is what readers should see of a process they
// cannot hear from.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		err := p.post(ctx, interval)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			p.log.Warn("insurer health not posted; other processes will stop seeing this one's", "err", err)
			failing = true
		case err == nil && failing:
			p.log.Info("insurer health posted again")
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interval)
			defer cancel()
			if err := p.board.Delete(dctx, p.key); err != nil {
				p.log.Warn("insurer health left on the board; it ages out", "err", err)
			}
			return nil
		case <-tick.C:
		case <-p.changed:
		}
	}
}

func (p *Publisher) post(ctx context.Context, timeout time.Duration) error {
	data, err := encode(p.src.Health())
	if err != nil {
		return fmt.Errorf("encode insurer health: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.board.Put(pctx, p.key, data)
}

// ProcessKey names this process on the board: host, pid and a random
// suffix (a pid is reused by the next container), in the characters a
// board key allows.
func ProcessKey() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(suffix[:]))
}
