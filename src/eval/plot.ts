// SVG plots for the results page and the attention-bias analysis. Charts are Vega-Lite specs
// rendered headless by Vega (no browser, no canvas: text widths are estimated), so a rerun of
// the results command writes the same SVG bytes for the same data.

import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

export type PlotSpec = TopLevelSpec;

/** The SVG text of a Vega-Lite spec whose data are inline (`data: { values }`). */
export async function renderSvg(spec: PlotSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
