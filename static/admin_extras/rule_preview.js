// The rule page's "Preview for a lead" search box: Enter must not submit the whole rule form
// (it was an inline onkeydown, which the Content-Security-Policy blocks).
document.addEventListener("keydown", function (event) {
  if (event.key === "Enter" && event.target && event.target.id === "preview-lead") event.preventDefault();
});
