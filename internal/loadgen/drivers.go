package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DriverAccount is a driver the benchmark signs in as.
type DriverAccount struct {
	Username, Password string
}

// SeedDrivers brings drivers online the way their apps would, through the
// REST API: each signs in, reports a position drawn uniformly in area and
// sets its availability to online, with up to concurrency drivers at a
// time. It stops at the first failure.
func SeedDrivers(ctx context.Context, baseURL string, drivers []DriverAccount, area Area, seed int64, concurrency int) error {
	base := strings.TrimRight(baseURL, "/")
	client := newClient(concurrency, nil)
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Go(func() {
			for i := range next {
				if err := seedDriver(ctx, client, base, drivers[i], area, rand.New(rand.NewPCG(uint64(seed), uint64(i)))); err != nil {
					cancel(fmt.Errorf("driver %s: %w", drivers[i].Username, err))
				}
			}
		})
	}
feed:
	for i := range drivers {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

func seedDriver(ctx context.Context, client *http.Client, base string, d DriverAccount, area Area, r *rand.Rand) error {
	tok, err := Login(ctx, client, base, d.Username, d.Password)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	lat, lng := area.point(r)
	pos := map[string]any{"lat": lat, "lng": lng, "recorded_at": time.Now().UTC().Format(time.RFC3339Nano)}
	if err := call(ctx, client, http.MethodPost, base+"/v1/drivers/me/location", tok, pos, http.StatusNoContent); err != nil {
		return fmt.Errorf("position: %w", err)
	}
	if err := call(ctx, client, http.MethodPut, base+"/v1/drivers/me/availability", tok, map[string]string{"availability": "online"}, http.StatusOK); err != nil {
		return fmt.Errorf("availability: %w", err)
	}
	return nil
}

// call sends a JSON body and checks the answer's status.
func call(ctx context.Context, client *http.Client, method, url, token string, body any, want int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
	}
	return nil
}
