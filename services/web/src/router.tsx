import { lazy, Suspense } from "react";
import { createBrowserRouter } from "react-router";
import { Loading } from "./components/ui";
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

// Pages few people open load on first visit, which keeps the first download small.
const MembersPage = lazy(() => import("./pages/members.page").then((m) => ({ default: m.MembersPage })));
const KeysPage = lazy(() => import("./pages/keys.page").then((m) => ({ default: m.KeysPage })));

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
      {
        path: "members",
        element: (
          <Suspense fallback={<Loading />}>
            <MembersPage />
          </Suspense>
        ),
      },
      {
        path: "keys",
        element: (
          <Suspense fallback={<Loading />}>
            <KeysPage />
          </Suspense>
        ),
      },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
]);
