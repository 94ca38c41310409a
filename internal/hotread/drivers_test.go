package hotread_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/fleet"
	geomemory "github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/hotread"
	"github.com/yolda/yolda/internal/identity"
)

type countingFleet struct {
	fleet.Store
	lists atomic.Int64
}

func (c *countingFleet) Drivers(ctx context.Context, f fleet.DriverFilter) ([]fleet.Driver, error) {
	c.lists.Add(1)
	return c.Store.Drivers(ctx, f)
}

// The board's driver list is served from the cache until a driver
// changes; the change is in the next list.
func TestDriverList(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		store := openSQLite(t)
		accounts, _ := account.NewService(store, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
		d, err := accounts.Add(ctx, account.NewUser{Username: "driver1", Password: "driver-password", Role: identity.Driver,
			VehiclePlate: "34TOW01", Capabilities: []string{"tow"}})
		if err != nil {
			t.Fatal(err)
		}
		db := &countingFleet{Store: store}
		dec, err := hotread.NewDrivers(db, newCache(), hotread.Options{})
		if err != nil {
			t.Fatal(err)
		}
		svc := fleet.NewService(dec, geomemory.New(geomemory.Options{}), fleet.Options{})
		list := func() fleet.Listed {
			t.Helper()
			p, err := svc.List(ctx, operator, fleet.DriverFilter{})
			if err != nil || len(p.Items) != 1 {
				t.Fatalf("list: %v %v", p, err)
			}
			return p.Items[0]
		}
		if l := list(); l.Availability != fleet.Offline {
			t.Fatalf("new driver: %s", l.Availability)
		}
		list()
		if n := db.lists.Load(); n != 1 {
			t.Errorf("%d database lists for two reads, want 1", n)
		}
		driver := identity.Principal{UserID: d.ID, Username: d.Username, Role: identity.Driver}
		if _, err := svc.SetAvailability(ctx, driver, fleet.Online); err != nil {
			t.Fatal(err)
		}
		if l := list(); l.Availability != fleet.Online {
			t.Errorf("after going online the board shows %s", l.Availability)
		}
	})
}
