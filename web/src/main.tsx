import { render } from "preact";
import { App } from "./app";
import { applyTheme, readTheme } from "./lib/theme";
import "./styles.css";

applyTheme(readTheme(), false);
render(<App />, document.getElementById("app") as HTMLElement);
