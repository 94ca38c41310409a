package app

import "testing"

func TestBuildVersion(t *testing.T) {
	for _, tc := range []struct {
		b    build
		want string
	}{
		{build{module: "(devel)"}, "devel"},
		{build{module: "(devel)", revision: "1c0abbbdeadbeef00"}, "devel-1c0abbbdeadb"},
		{build{module: "(devel)", revision: "1c0abbbdeadbeef00", modified: true}, "devel-1c0abbbdeadb-dirty"},
		{build{module: "v0.0.0-20261201070515-ab19723ec28c+dirty", revision: "ab19723ec28c"}, "v0.0.0-20261201070515-ab19723ec28c+dirty"},
		{build{module: "v1.2.0"}, "v1.2.0"},
	} {
		if got := tc.b.version(); got != tc.want {
			t.Errorf("%+v: version %q, want %q", tc.b, got, tc.want)
		}
	}
}
