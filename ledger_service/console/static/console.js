// Progressive enhancement only: every page works without this script. Shows times in the
// viewer's time zone; the UTC time stays in the element's title (on hover).
document.querySelectorAll("time[datetime]").forEach((element) => {
  const when = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) {
    element.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
});
