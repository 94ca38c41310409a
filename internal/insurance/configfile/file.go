// Package configfile reads the insurers file (YOLDA_INSURERS_FILE): YAML
// (JSON is valid YAML), strict about unknown fields and impossible values,
// with each insurer's secret read from the environment variable the file
// names, never from the file.
package configfile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/yolda/yolda/internal/insurance"
)

// The insurers file, as written. Pointers tell "left out" (default) from
// "set to zero" (an error).
type (
	rawFile struct {
		Insurers []rawInsurer `yaml:"insurers"`
	}
	rawInsurer struct {
		Code                 string      `yaml:"code"`
		Name                 string      `yaml:"name"`
		Adapter              *string     `yaml:"adapter"`
		BaseURL              string      `yaml:"base_url"`
		Timeout              *string     `yaml:"timeout"`
		Auth                 *rawAuth    `yaml:"auth"`
		Retry                *rawRetry   `yaml:"retry"`
		Breaker              *rawBreaker `yaml:"breaker"`
		Bulkhead             *int        `yaml:"bulkhead"`
		Patience             *string     `yaml:"patience"`
		VerifyBeforeDispatch bool        `yaml:"verify_before_dispatch"`
		ArrivalSLAMinutes    *int        `yaml:"arrival_sla_minutes"`
	}
	rawAuth struct {
		Header   string `yaml:"header"`
		Scheme   string `yaml:"scheme"`
		ValueEnv string `yaml:"value_env"`
	}
	rawRetry struct {
		Attempts  *int     `yaml:"attempts"`
		BaseDelay *string  `yaml:"base_delay"`
		MaxDelay  *string  `yaml:"max_delay"`
		Budget    *float64 `yaml:"budget"`
	}
	rawBreaker struct {
		Failures       *int    `yaml:"failures"`
		OpenFor        *string `yaml:"open_for"`
		HalfOpenProbes *int    `yaml:"half_open_probes"`
	}
)

var rawTypeNames = strings.NewReplacer(
	"type configfile.rawFile", "the file's top level",
	"type configfile.rawInsurer", "an insurer",
	"type configfile.rawAuth", "auth",
	"type configfile.rawRetry", "retry",
	"type configfile.rawBreaker", "breaker",
	"configfile.rawFile", "the file's top level",
	"configfile.rawInsurer", "an insurer",
	"configfile.rawAuth", "auth",
	"configfile.rawRetry", "retry",
	"configfile.rawBreaker", "breaker",
)

// LoadFile reads the insurers file at path (YAML; JSON is valid YAML):
//
//	insurers:
//	  - code: anadolu
//	    name: Anadolu Sigorta
//	    base_url: http://127.0.0.1:9100
//	    auth: {header: Authorization, scheme: Bearer, value_env: ANADOLU_TOKEN}
//
// Unknown fields, duplicate codes and invalid settings are errors; secrets
// are read with getenv (os.Getenv if nil) from the variables the file names.
// An empty file, or an empty list, is no insurers.
func LoadFile(path string, getenv func(string) string) ([]insurance.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("insurers file: %w", err)
	}
	cfgs, err := Parse(data, getenv)
	if err != nil {
		return nil, fmt.Errorf("insurers file %s: %w", path, err)
	}
	return cfgs, nil
}

// Parse is LoadFile on the file's content.
func Parse(data []byte, getenv func(string) string) ([]insurance.Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f rawFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		// "field retyr not found in type configfile.rawInsurer" -> "... in an insurer"
		return nil, errors.New(rawTypeNames.Replace(err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}

	var (
		cfgs []insurance.Config
		errs []error
		seen = map[string]int{}
	)
	for i, r := range f.Insurers {
		c, problems := r.config(getenv)
		problems = append(problems, c.Problems()...)
		if j, dup := seen[c.Code]; dup {
			problems = append(problems, fmt.Errorf("code: %q is already used by insurers[%d]", c.Code, j))
		}
		if len(problems) > 0 {
			errs = append(errs, prefixed(fmt.Sprintf("insurers[%d] (%s): ", i, cmp.Or(r.Code, "no code")), problems))
			continue
		}
		seen[c.Code] = i
		cfgs = append(cfgs, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfgs, nil
}

// config turns what the file says into a Config: defaults, overridden by
// whatever the file sets (an explicit zero stays zero, for Validate to
// reject), and the secret read from the environment. It reports only what
// Validate cannot see: unparsable durations, left at their defaults.
func (r rawInsurer) config(getenv func(string) string) (insurance.Config, []error) {
	c := insurance.Config{Code: r.Code, Name: r.Name, VerifyBeforeDispatch: r.VerifyBeforeDispatch}.Default()
	c.BaseURL = r.BaseURL
	var errs []error
	dur := func(field string, s *string, dst *time.Duration) {
		if s == nil {
			return
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: want a duration like 2s or 500ms, got %q", field, *s))
			return
		}
		*dst = d
	}
	set := func(p *int, dst *int) {
		if p != nil {
			*dst = *p
		}
	}
	if r.Adapter != nil {
		c.Adapter = *r.Adapter
	}
	dur("timeout", r.Timeout, &c.Timeout)
	if a := r.Auth; a != nil {
		c.Auth = insurance.Auth{Header: a.Header, Scheme: a.Scheme, ValueEnv: a.ValueEnv}
		if a.ValueEnv != "" {
			c.Auth.Value = insurance.NewSecret(getenv(a.ValueEnv))
		}
	}
	if rr := r.Retry; rr != nil {
		set(rr.Attempts, &c.Retry.Attempts)
		dur("retry.base_delay", rr.BaseDelay, &c.Retry.BaseDelay)
		dur("retry.max_delay", rr.MaxDelay, &c.Retry.MaxDelay)
		if rr.Budget != nil {
			c.Retry.Budget = *rr.Budget
		}
	}
	if b := r.Breaker; b != nil {
		set(b.Failures, &c.Breaker.Failures)
		dur("breaker.open_for", b.OpenFor, &c.Breaker.OpenFor)
		set(b.HalfOpenProbes, &c.Breaker.HalfOpenProbes)
	}
	set(r.Bulkhead, &c.Bulkhead)
	dur("patience", r.Patience, &c.Patience)
	set(r.ArrivalSLAMinutes, &c.ArrivalSLAMinutes)
	return c, errs
}

// prefixed joins errs, each line starting with prefix.
func prefixed(prefix string, errs []error) error {
	for i, err := range errs {
		errs[i] = fmt.Errorf("%s%w", prefix, err)
	}
	return errors.Join(errs...)
}
