// htmx settings of the console (loaded after htmx). Error answers (403, 404, 409...) carry an
// HTML fragment with the message: swap them in like successes instead of dropping them.
htmx.config.responseHandling = [
  {code: "204", swap: false},
  {code: "[2345]..", swap: true, error: false},
  {code: "...", swap: false},
];
// After an action is accepted, refresh the VM table at once rather than at the next poll.
document.addEventListener("htmx:afterRequest", function (ev) {
  var verb = ev.detail.requestConfig && ev.detail.requestConfig.verb;
  if (verb === "post") { htmx.trigger(document.body, "vpd-refresh"); }
});
