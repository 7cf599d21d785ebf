import { createBrowserRouter } from "react-router";
import { Layout, RouteError } from "./layout";
import { AuditPage } from "./pages/audit.page";
import { ExperimentPage } from "./pages/experiment.page";
import { GatePage } from "./pages/gate.page";
import { GatesPage } from "./pages/gates.page";
import { LearningsPage } from "./pages/learnings.page";
import { NotFoundPage } from "./pages/not-found.page";
import { OutcomePage } from "./pages/outcome.page";
import { OutcomeEditorPage } from "./pages/outcome-editor.page";
import { OutcomesPage } from "./pages/outcomes.page";
import { SignInPage } from "./pages/sign-in.page";
import { UsagePage } from "./pages/usage.page";

export const router = createBrowserRouter([
  { path: "/signin", element: <SignInPage />, errorElement: <RouteError /> },
  {
    path: "/",
    element: <Layout />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <OutcomesPage /> },
      { path: "outcomes", element: <OutcomesPage /> },
      { path: "outcomes/new", element: <OutcomeEditorPage /> },
      { path: "outcomes/:id", element: <OutcomePage /> },
      { path: "outcomes/:id/edit", element: <OutcomeEditorPage /> },
      { path: "experiments/:id", element: <ExperimentPage /> },
      { path: "gates", element: <GatesPage /> },
      { path: "gates/:id", element: <GatePage /> },
      { path: "learnings", element: <LearningsPage /> },
      { path: "usage", element: <UsagePage /> },
      { path: "audit", element: <AuditPage /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);
