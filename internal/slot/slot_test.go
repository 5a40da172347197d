package slot

import "testing"

func TestReplaceKeepsTheNewest(t *testing.T) {
	ch := make(chan int, 1)
	Replace(ch, 1)
	Replace(ch, 2)
	Replace(ch, 3)
	if got := <-ch; got != 3 {
		t.Fatalf("received %d, want the newest value 3", got)
	}
	select {
	case v := <-ch:
		t.Fatalf("a second value %d was waiting", v)
	default:
	}
}

func TestClear(t *testing.T) {
	ch := make(chan int, 1)
	Clear(ch) // empty: must not block
	Replace(ch, 1)
	Clear(ch)
	select {
	case v := <-ch:
		t.Fatalf("value %d survived Clear", v)
	default:
	}
}
