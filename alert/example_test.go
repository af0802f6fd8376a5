package alert_test

import (
	"context"
	"path/filepath"
	"time"

	"mamoru/alert"
)

// The recorder's side: a press raises incident.started, which goes to a
// signed webhook and to the manager's phone through ntfy, each through its
// own queue on the card; the indicator learns when one of them took it.
func Example() {
	ctx := context.Background()
	stateDir := "/var/lib/mamoru"
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	origin := alert.Origin{Store: "shop-1", Device: "counter-1", Label: "カウンター1", Zone: tokyo, ConsoleURL: "https://console.example"}

	callWentOut := func(e alert.Event) {
		if e.Name == alert.IncidentStarted {
			// show the indicator's "a target accepted the alert" pattern
		}
	}
	hook, err := alert.NewWebhook(alert.WebhookOptions{Label: "本部", URL: "https://hooks.example/mamoru", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		panic(err)
	}
	phone, err := alert.NewNtfy(alert.NtfyOptions{Label: "店長のスマホ", URL: "https://ntfy.sh/mamoru-shop-1-x7q2k9"})
	if err != nil {
		panic(err)
	}
	var routes []alert.Route
	for _, target := range []struct {
		label  string
		t      alert.Target
		events []string
	}{
		{"本部", hook, []string{"incident.*", "device.*"}},
		{"店長のスマホ", phone, nil}, // the default events
	} {
		filter, err := alert.NewFilter(target.events)
		if err != nil {
			panic(err)
		}
		q, err := alert.OpenQueue(alert.QueueDir(filepath.Join(stateDir, "alerts"), target.label), target.t,
			alert.QueueOptions{Label: target.label, Accepted: callWentOut})
		if err != nil {
			panic(err)
		}
		routes = append(routes, alert.Route{Filter: filter, Queue: q})
	}
	d := alert.NewDispatcher(routes, alert.DispatcherOptions{})
	go d.Run(ctx)

	// On a press (never blocks, never touches the disk):
	press := time.Now()
	e := origin.IncidentEvent(alert.IncidentStarted, press, "20261130-140205-000042", press)
	e.Source = "button"
	d.Publish(e)
}
