package fold

import "testing"

func TestKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"İzmir", "izmir"}, {"Izmir", "izmir"}, {"izmir", "izmir"}, {"IZMIR", "izmir"}, {"ızmir", "izmir"},
		{"Şişli", "sisli"}, {"ÇANAKKALE", "canakkale"}, {"Muğla", "mugla"}, {"Düzce", "duzce"},
		{"Kırşehir", "kirsehir"}, {"  Ankara ", "ankara"}, {"", ""},
	} {
		if got := Key(c.in); got != c.want {
			t.Errorf("Key(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if len([]rune(Letters)) != len([]rune(ASCII)) {
		t.Fatal("Letters and ASCII differ in length")
	}
}

func TestProvince(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"IZMIR", "İzmir"}, {"izmir", "İzmir"}, {"İzmir", "İzmir"}, {"sanliurfa", "Şanlıurfa"},
		{"IGDIR", "Iğdır"}, {"istanbul", "İstanbul"}, {" Kocaeli ", "Kocaeli"}, {"Atlantis", "Atlantis"},
	} {
		if got := Province(c.in); got != c.want {
			t.Errorf("Province(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if len(provinces) != 81 {
		t.Errorf("%d provinces, want 81 with distinct keys", len(provinces))
	}
}
