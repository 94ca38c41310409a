package resilient

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/yolda/yolda/internal/insurance"
)

// Clients are the clients of every configured insurer, by code.
// A nil *Clients is a valid empty set.
type Clients struct {
	list   []*Client
	byCode map[string]*Client
}

// NewClients builds one Client per configuration, each with the adapter
// factories[cfg.Adapter] builds for it. Codes must be unique.
func NewClients(cfgs []insurance.Config, factories map[string]insurance.Factory, opts Options) (*Clients, error) {
	s := &Clients{byCode: make(map[string]*Client, len(cfgs))}
	for _, cfg := range cfgs {
		if _, dup := s.byCode[cfg.Code]; dup {
			return nil, errors.Join(fmt.Errorf("insurer %s: code used twice", cfg.Code), s.Close())
		}
		factory, ok := factories[cfg.Adapter]
		if !ok {
			known := make([]string, 0, len(factories))
			for name := range factories {
				known = append(known, name)
			}
			slices.Sort(known)
			return nil, errors.Join(fmt.Errorf("insurer %s: adapter: unknown adapter %q (known: %v)", cfg.Code, cfg.Adapter, known), s.Close())
		}
		a, err := factory(cfg)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("insurer %s: adapter %s: %w", cfg.Code, cfg.Adapter, err), s.Close())
		}
		c, err := NewClient(cfg, a, opts)
		if err != nil {
			if cl, ok := a.(io.Closer); ok {
				cl.Close()
			}
			return nil, errors.Join(err, s.Close())
		}
		s.list = append(s.list, c)
		s.byCode[cfg.Code] = c
	}
	return s, nil
}

// Get returns the client of the insurer with that code.
func (s *Clients) Get(code string) (*Client, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byCode[code]
	return c, ok
}

// All returns the clients in configuration order.
func (s *Clients) All() []*Client {
	if s == nil {
		return nil
	}
	return slices.Clone(s.list)
}

// Health returns every insurer's health, in configuration order.
func (s *Clients) Health() []Health {
	hs := make([]Health, 0, len(s.All()))
	for _, c := range s.All() {
		hs = append(hs, c.Health())
	}
	return hs
}

// Close releases the adapters' resources (idle connections); call it once
// no Verify is running.
func (s *Clients) Close() error {
	var errs []error
	for _, c := range s.All() {
		if cl, ok := c.adapter.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
	}
	return errors.Join(errs...)
}
