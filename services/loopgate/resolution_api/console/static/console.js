// The queue refreshes itself (htmx polling) except while the operator is selecting rows or typing
// in the bulk form, so a refresh never drops a selection or a half-typed reason.
document.addEventListener("htmx:beforeRequest", function (event) {
  var form = document.getElementById("bulk");
  if (!form || event.detail.elt.id !== "live") return;
  var busy = form.querySelector("input.pick:checked") || form.contains(document.activeElement);
  if (busy) event.preventDefault();
});
