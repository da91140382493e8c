// Parts of a screen that load on their own: each shows its answer, or its error with "Try
// again" that loads that part again, without blanking the rest of the page.
import { errorPanel, loading, mount } from "./dom.js";

// A section that fills from `load` (a function returning a promise): on an error it says why,
// with "Try again" (for errors that can pass) loading that section again. The promise returned
// settles once the section shows its data or its error.
export function fillSection(ctx, box, load, draw) {
  return load().then((data) => { if (!ctx.stale()) mount(box, draw(data)); }, (err) => {
    if (ctx.stale()) return;
    mount(box, errorPanel(err, () => {
      mount(box, loading());
      fillSection(ctx, box, load, draw);
    }));
  });
}

// One request shared by the sections that need it; asked again after it failed.
export function shared(request) {
  let pending = null;
  return () => {
    if (!pending) {
      pending = request();
      pending.catch(() => { pending = null; });
    }
    return pending;
  };
}
